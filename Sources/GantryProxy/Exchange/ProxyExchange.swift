import Foundation
import GantryConfig
import GantryCore
import GantryTLS
import NIOCore
import NIOHTTP1

/// One request, from its head to its last byte, in the order it meets the path: the head
/// arrives (``begin(_:from:)``), the edge admits it and the ingress rules route it
/// (``admit(_:keptClientID:incoming:)``), the route's gateway policies run
/// (``runPolicies(_:from:)``), the body is checked if a policy asks (``proceed(now:)``), an
/// endpoint is chosen (``chooseEndpoint(now:)``), a connection is taken or made
/// (``connect(to:now:)``), the request is sent (``send(on:flush:now:)``), the response head is
/// received (``upstreamReceivedHead(_:)``), the body is relayed both ways with backpressure,
/// and the request finishes and is logged (``finish(now:)``). A retry goes back to choosing an
/// endpoint. Gantry's own answers (``respondLocally(_:)``) can come from any step.
///
/// Everything the request gathers is in one ``RequestContext``; the exchange lives on its
/// connection's event loop, and the loop starts later requests with it once it has ended and
/// nothing else holds it (``LoopContext/takeExchange()``).
final class ProxyExchange {
    /// Strong, as in the front ends: an exchange ends with its request, or soon after with the
    /// callback (a connect, a policy's wait) that still holds it.
    let loop: LoopContext
    private(set) var downstream: (any Downstream)?
    private(set) var context: RequestContext

    init(loop: LoopContext) {
        self.loop = loop
        self.context = .ended(on: loop.current)
    }

    var hasForwardedResponse: Bool { context.responseSide != .waiting }
    var method: HTTPMethod { context.method ?? .GET }
    var requestID: RequestIdentifier { context.id }

    // MARK: 1. The head arrives

    /// Starts a request with its head, on the loop's current snapshot.
    func begin(_ head: ClientRequestHead, from downstream: any Downstream) {
        precondition(context.finished, "an exchange carries one request at a time")
        self.downstream = downstream
        loop.metrics.add(.requests)
        let clientID = head.facts.requestID
        let keptClientID = clientID.map(RequestIdentifier.isSane) ?? false
        context = RequestContext(
            id: keptClientID ? .client(clientID!) : loop.newRequestID(), started: .now(),
            wallClock: loop.accessLog == nil ? 0 : LoopContext.wallClock(), method: head.method, version: head.version, snapshot: loop.current)
        // Through `?.`: binding the optional tracer would copy its existential on every request.
        if loop.isTracing { context.span = loop.tracer?.startServerSpan(method: head.method.rawValue, headers: head.headers) }
        let incoming = head.facts.traceparent.flatMap { TraceContext(header: $0) }
        context.serverTiming = context.snapshot.runtime.serverTiming && (head.facts.asksForTiming || incoming?.sampled == true)
        admit(head, keptClientID: keptClientID, incoming: incoming)
    }

    /// Bytes that were not a request (the parser refused them) or a head that never came in
    /// time: answered, logged, and the connection closes.
    func answerWithoutRequest(_ response: LocalResponse, from downstream: any Downstream) {
        precondition(context.finished, "an exchange carries one request at a time")
        self.downstream = downstream
        context = RequestContext(
            id: loop.newRequestID(), started: .now(), wallClock: LoopContext.wallClock(), method: nil, version: .http1_1, snapshot: loop.current)
        respondLocally(response)
    }

    // MARK: 2. Admission and routing

    private func admit(_ head: ClientRequestHead, keptClientID: Bool, incoming: TraceContext?) {
        let runtime = context.snapshot.runtime
        guard let client = downstream?.client else { return }
        let admission = loop.drawRandom { RequestAdmission.admit(head, snapshot: runtime, client: client, random: &$0) }
        switch admission {
        case .reject(let response, let host, let path):
            context.host = host
            context.path = path
            context.hasBody = Framing(head.facts).hasBody
            respondLocally(response)
        case .admitted(let admitted):
            context.route = admitted.route
            context.routeIndex = admitted.route.index
            context.serviceIndex = admitted.service
            context.host = admitted.host
            context.path = admitted.path
            context.hasBody = admitted.framing.hasBody
            context.expectsContinue = head.facts.expectsContinue
            context.maxRequestBody = runtime.limits.maxBodySize
            let forwarding = ForwardingHeaders(
                client: head, clientIP: client.address, scheme: client.scheme, host: admitted.host, requestID: context.id,
                keptClientID: keptClientID, chunked: admitted.framing.isChunked, defaultHost: context.cluster.settings.name)
            var upstreamHead = UpstreamRequestHead(client: head, uri: admitted.uri, forwarding: forwarding)
            if head.version.major == 2, let type = upstreamHead.first(name: "content-type"), GRPC.isCall(contentType: type) {
                noteGRPCCall(upstreamHead)
            }
            if let wanted = head.facts.requestedUpgrade, !admitted.framing.hasBody, downstream?.canSwitchProtocols == true,
                context.settings.upgrades.contains(wanted), !context.cluster.settings.upstreamProtocol.isHTTP2
            {
                // RFC 9110 §7.8: asked again on gantry's own hop, for the one protocol the route
                // allows (not the client's whole list). Any other upgrade goes no further than
                // gantry, and the request is answered as a plain one.
                context.upgrade = wanted
                upstreamHead.setUpgrade(wanted)
            } else if downstream?.requiresSwitch == true {
                // An HTTP/2 extended CONNECT asks for a tunnel or nothing (RFC 8441 §4).
                respondLocally(
                    LocalResponse(
                        .upgradeNotAllowed,
                        message: "this route does not switch to \(head.facts.requestedUpgrade ?? "that protocol"): add it to the route's upgrades"))
                return
            }
            traceUpstream(&upstreamHead, facts: head.facts, incoming: incoming)
            context.upstreamHead = consume upstreamHead
            if context.settings.policies.isEmpty {
                context.policiesPassed = true
                if admitted.route.mirror != nil { startMirror() }
                // Admission without policies takes a microsecond or two: not worth reading the clock.
                proceed(now: context.started)
            } else {
                var request = PolicyRequest(
                    original: head.nioHead, upstream: context.upstreamHead!.built, clientIP: client.address, route: admitted.route.name,
                    now: Date(), monotonic: NIODeadline.now().uptimeNanoseconds)
                request.routeRateLimits = context.settings.rateLimits
                runPolicies(&request, from: 0)
            }
        }
    }

    /// A gRPC call: its deadline, from `grpc-timeout`, which goes upstream as it came.
    private func noteGRPCCall(_ head: UpstreamRequestHead) {
        context.isGRPC = true
        if let timeout = head.first(name: "grpc-timeout").flatMap({ GRPC.timeoutNanoseconds($0) }) {
            context.callDeadline = context.started + .nanoseconds(min(timeout, Int64.max / 2))
        }
    }

    /// Sends gantry's span upstream in `traceparent`, under the client's trace or a new one.
    private func traceUpstream(_ head: inout UpstreamRequestHead, facts: HeaderFacts, incoming: TraceContext?) {
        let sampled = context.serverTiming
        let trace = loop.drawRandom { random in
            incoming?.child(using: &random, sampled: sampled) ?? TraceContext.start(using: &random, sampled: sampled)
        }
        head.setTrace(trace, dropsTracestate: incoming == nil && facts.hasTracestate)  // it belongs to the trace we replaced
        if loop.isTracing, let span = context.span {
            // Replaces the `traceparent` just written with the recorded span's; the one above
            // stays when the tracer records nothing (a sampler that drops everything injects
            // nothing), and it has already dropped a stale `tracestate`.
            loop.tracer?.propagate(span, into: &head.built.headers)
        }
    }

    // MARK: 3. Gateway policies

    /// Runs the route's policies from `position` on, in order. Each may let the request on,
    /// answer it, or wait for an answer from elsewhere and then decide.
    private func runPolicies(_ request: inout PolicyRequest, from position: Int) {
        let positions = context.settings.policies
        var position = position
        while position < positions.count {
            let verdict = context.snapshot.gateway.policies[positions[position]].evaluate(&request, environment: loop.policyEnvironment)
            guard settle(verdict, request: request, at: position) else { return }
            position += 1
        }
        context.upstreamHead!.built = request.upstream
        context.responseEdits = request.responseEdits
        if let limit = request.maxBodySize { context.maxRequestBody = min(context.maxRequestBody ?? limit, limit) }
        context.bodySchema = request.bodySchema
        if context.outcome == nil { context.outcome = request.note }
        context.policiesPassed = true
        if context.route?.mirror != nil { startMirror() }
        proceed()
    }

    /// Acts on a policy's verdict; true when the next policy should run.
    private func settle(_ verdict: PolicyVerdict, request: PolicyRequest, at position: Int) -> Bool {
        switch verdict {
        case .proceed:
            return true
        case .respond(var response):
            // Headers meant for the client (CORS) go on refusals too, so browsers can read them.
            response.extraHeaders += request.responseEdits.add
            respondLocally(response)
            return false
        case .wait(let answer):
            // Reading pauses until the answer comes; it resumes this request on this loop.
            downstream?.setReadsPaused(true)
            answer.hop(to: loop.eventLoop).assumeIsolated().whenComplete { [self] result in
                guard !context.finished else { return }
                downstream?.setReadsPaused(false)
                var request = request
                request.now = Date()
                request.monotonic = NIODeadline.now().uptimeNanoseconds
                let verdict: PolicyVerdict
                switch result {
                case .success(let resumption): verdict = resumption.resume(&request)
                case .failure: verdict = .respond(LocalResponse(.policyUnavailable, message: "a policy could not decide"))
                }
                if settle(verdict, request: request, at: position) { runPolicies(&request, from: position + 1) }
            }
            return false
        }
    }

    // MARK: 4. Between the gateway and the upstream

    /// The steps that may wait before an endpoint is chosen: `100 Continue` (only once the
    /// request is allowed), and reading the body in full when a policy checks it.
    private func proceed(now: NIODeadline = .now()) {
        if context.expectsContinue, !context.sentContinue {
            context.sentContinue = true
            downstream?.sendContinue()
        }
        if context.bodySchema != nil {
            if !context.hasBody || context.requestEnded { checkBody() }
            return
        }
        chooseEndpoint(now: now)
    }

    /// Checks the whole request body against the route's JSON Schema, then goes upstream.
    private func checkBody() {
        guard let schema = context.bodySchema else { return }
        var body = ByteBuffer()
        for var part in context.pending { body.writeBuffer(&part) }
        let problem: String?
        if !context.hasBody {
            problem = "a JSON body is required"
        } else if let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView)) {
            problem = schema.violation(of: value)
        } else {
            problem = "the body is not JSON"
        }
        if let problem {
            respondLocally(LocalResponse(.invalidBody, message: problem))
            return
        }
        chooseEndpoint()
    }

    // MARK: 5. Choosing an endpoint

    /// Picks an endpoint of the route's service in the request's snapshot, avoiding those this
    /// request has tried and, while others remain, those ejected by outlier detection.
    private func chooseEndpoint(now: NIODeadline = .now()) {
        if context.gatewayDone == nil { context.gatewayDone = now }
        if let previous = context.endpoint { context.tried.append(previous.address) }
        let cluster = context.cluster
        let set = cluster.endpoints
        // Only a consistent-hash balancer reads a key.
        var key: UInt64?
        if case .consistentHash(let source) = set.balancer.kind { key = hashKey(source) }
        let excluded = set.excluded(tried: context.tried, now: now.uptimeNanoseconds)
        var cursor = cluster.cursor.position
        let pick = loop.drawRandom { random in
            set.balancer.pick(cursor: &cursor, key: key, tried: excluded, loads: set, random: &random)
        }
        cluster.cursor.position = cursor
        guard let index = pick else {
            respondLocally(LocalResponse(.noEndpoint, message: "service \(cluster.settings.name) has no ready endpoint"))
            return
        }
        let endpoint = set.endpoints[index]
        context.endpoint = endpoint
        context.attempts += 1
        connect(to: endpoint, now: now)
    }

    /// The key a consistent-hash balancer places the request by (the client's address, a
    /// header or a cookie), or nil when the request lacks it.
    private func hashKey(_ source: HashKey) -> UInt64? {
        switch source {
        case .clientIP:
            return downstream.map { StableHash.hash($0.client.address) }
        case .header(let name):
            return context.upstreamHead?.first(name: name).map { StableHash.hash($0) }
        case .cookie(let name):
            return (context.upstreamHead?.values(name: "cookie")).flatMap { Cookies.value(named: name, in: $0) }.map { StableHash.hash($0) }
        }
    }

    // MARK: 6. A connection to the endpoint

    private func connect(to endpoint: EndpointState, now: NIODeadline) {
        let cluster = context.cluster
        if let http2Pool = cluster.http2Pool {
            openStream(in: http2Pool, to: endpoint)
            return
        }
        // A request that asks to switch protocols gets a connection of its own: many servers
        // (NIO's upgrader among them) switch only on a connection's first request, and the
        // connection never returns to the pool anyway.
        if context.upgrade == nil, let connection = cluster.pool.take(endpoint) {
            loop.metrics.add(.upstreamReused)
            // Inside the client's read batch, the flush waits for the batch's end, so a request
            // that turns out malformed later in the same batch never leaves.
            send(on: connection, flush: !(downstream?.isInReadBatch ?? false), now: now)
            return
        }
        guard let socketAddress = loop.socketAddress(for: endpoint.address) else {
            attemptFailed(.connectFailure, reason: .upstreamAddressUnresolvable)
            return
        }
        let service = cluster.settings
        guard let security = security(for: endpoint) else { return }
        downstream?.setReadsPaused(true)
        loop.metrics.add(.upstreamConnects)
        let connection = UpstreamHandler(endpoint: endpoint, service: service, pool: cluster.pool, loop: loop)
        let attempt = context.attempts
        loop.connector.connect(connection, to: socketAddress, tls: security, timeout: TimeAmount(service.connectTimeout), on: loop.eventLoop)
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success:
                    guard !context.finished, attempt == context.attempts else {
                        // The client left, or the exchange moved on while connecting: keep the
                        // fresh connection for the next request.
                        connection.pool.release(connection, now: .now())
                        return
                    }
                    send(on: connection, flush: true, now: .now())
                case .failure(let error):
                    if endpoint.failedLocally(now: NIODeadline.now().uptimeNanoseconds, policy: service.outlierDetection) {
                        loop.metrics.add(.outlierEjections)
                    }
                    guard !context.finished, attempt == context.attempts else { return }
                    connectFailed(error, to: endpoint)
                }
            }
    }

    /// The TLS a connection to `endpoint` is made with: `.some(nil)` for none; nil when the
    /// service's TLS files do not load (the request has been answered).
    private func security(for endpoint: EndpointState) -> UpstreamSecurity?? {
        let service = context.cluster.settings
        guard let tls = service.tls else { return .some(nil) }
        do {
            var security = UpstreamSecurity(
                context: try TLSClientContext.shared.context(for: tls), serverName: tls.serverName(forHost: endpoint.address.host))
            if tls.http2 { security.requiredProtocol = "h2" }
            return security
        } catch {
            context.outcomeDetail = "service \(service.name): \(error)"
            attemptFailed(.connectFailure, reason: .upstreamTLSFailure, canRetry: false)
            return nil
        }
    }

    /// A connection to `endpoint` could not be made, for this attempt.
    private func connectFailed(_ error: any Error, to endpoint: EndpointState) {
        loop.metrics.add(.upstreamConnectFailures)
        if let failure = error as? UpstreamTLSFailure {
            // Said in the log, with the endpoint: which certificate, and why.
            context.outcomeDetail = "\(endpoint.address): \(failure)"
            attemptFailed(.connectFailure, reason: .upstreamTLSFailure)
            return
        }
        let timedOut: Bool
        if case ChannelError.connectTimeout = error { timedOut = true } else { timedOut = false }
        attemptFailed(.connectFailure, reason: timedOut ? .upstreamConnectTimeout : .upstreamConnectFailure)
    }

    /// A stream on an HTTP/2 connection to `endpoint`: one with room, else a new connection.
    private func openStream(in pool: HTTP2UpstreamPool, to endpoint: EndpointState) {
        let connection: HTTP2UpstreamConnection
        if let open = pool.connection(to: endpoint) {
            loop.metrics.add(.upstreamReused)
            connection = open
        } else {
            guard let socketAddress = loop.socketAddress(for: endpoint.address) else {
                attemptFailed(.connectFailure, reason: .upstreamAddressUnresolvable)
                return
            }
            guard let security = security(for: endpoint) else { return }
            let service = context.cluster.settings
            loop.metrics.add(.upstreamConnects)
            connection = HTTP2UpstreamConnection(endpoint: endpoint, service: service, pool: pool, loop: loop)
            pool.add(connection)
            connection.connect(
                to: socketAddress, endpoint: endpoint, security: security, timeout: TimeAmount(service.connectTimeout),
                outlier: service.outlierDetection)
        }
        downstream?.setReadsPaused(true)
        let attempt = context.attempts
        connection.openStream { [self] result in
            switch result {
            case .success(let stream):
                guard !context.finished, attempt == context.attempts else {
                    stream.close()
                    return
                }
                // Inside the client's read batch, the flush waits for the batch's end, as for
                // a pooled HTTP/1.1 connection.
                send(on: stream, flush: !(downstream?.isInReadBatch ?? false), now: .now())
            case .failure(let error):
                guard !context.finished, attempt == context.attempts else { return }
                if error is HTTP2UpstreamConnection.Overflow {
                    openStream(in: pool, to: endpoint)
                    return
                }
                connectFailed(error, to: endpoint)
            }
        }
    }

    // MARK: 7. Sending the request

    /// `now` is when the endpoint was chosen or the connection came up, microseconds ago: one
    /// clock reading serves the send and the response timeout.
    private func send(on connection: any Upstream, flush: Bool, now: NIODeadline) {
        context.upstream = connection
        connection.exchange = self
        context.endpoint?.requestStarted()
        context.upstreamStarted = now
        context.lastActivity = now
        // In place: passed by value, the head was copied out of the context for the call.
        connection.writeHead(&context.upstreamHead!)
        for buffer in context.pending {
            connection.writeBody(buffer)
        }
        if context.cluster.http2Pool != nil { context.sentBody = SentBody(context.pending) }
        context.pending.removeAll()
        if context.requestEnded {
            connection.writeEnd()
            context.requestSide = .complete
            armResponseTimeout(now: now)
        } else {
            context.requestSide = .streaming
            // Without a body, the request is complete once its head has gone; its end follows
            // at once from the same read, and need not read the clock again.
            if !context.hasBody { armResponseTimeout(now: now) }
            downstream?.setReadsPaused(!connection.isWritable)
        }
        if flush { connection.flush() }
    }

    /// A gRPC call's own deadline stands in for the route's timeout (Envoy's `grpc-timeout`
    /// handling), and is checked on its own (``checkTimeouts(now:)``).
    private func armResponseTimeout(now: NIODeadline) {
        guard context.callDeadline == nil else { return }
        context.responseDeadline = now + .nanoseconds(context.settings.responseTimeoutNanoseconds)
    }

    // MARK: The mirror

    /// Copies the request for the route's mirror when its share draws it: the head as it goes
    /// upstream, after the policies, and the body read so far; sent now if there is no more to
    /// come, else when the body ends.
    private func startMirror() {
        guard let mirror = context.route?.mirror, loop.drawRandom({ mirror.takes($0.next()) }), let head = context.upstreamHead else { return }
        let copy = RequestMirror(head: head.built)
        for part in context.pending { copy.append(part) }
        loop.metrics.add(.mirroredRequests)
        if !context.hasBody || context.requestEnded { sendMirror(copy, to: mirror.service) } else { context.mirror = copy }
    }

    private func sendMirror(_ copy: RequestMirror, to service: Int) {
        guard let endpoint = context.snapshot.clusters[service].endpoints.endpoints.randomElement() else { return }
        copy.send(to: endpoint.address, on: loop.eventLoop)
    }

    // MARK: The request's body, from the client

    func requestBody(_ buffer: ByteBuffer) {
        context.requestBytes += buffer.readableBytes
        context.mirror?.append(buffer)
        if let limit = context.maxRequestBody, context.requestBytes > limit {
            // A chunked body grew past the limit while streaming.
            guard context.responseSide == .waiting else {
                context.status = 413
                context.outcome = .payloadTooLarge
                abandonUpstream()
                downstream?.cutShort()
                complete()
                return
            }
            respondLocally(LocalResponse(.payloadTooLarge, message: "the body is larger than \(limit) bytes", closesConnection: true))
            return
        }
        context.lastActivity = .now()
        guard context.hasBody else {
            // Bytes the head did not announce (an HTTP/2 stream's DATA after a GET): never
            // written upstream, where they would read as another request. Before a switch they
            // wait for the tunnel; otherwise the request is refused.
            if context.upgrade != nil, context.tunnelStarted == nil {
                context.pending.append(buffer)
            } else {
                requestBroke(LocalResponse.badRequest("the request carries a body its head does not announce"))
            }
            return
        }
        switch context.requestSide {
        case .buffering:
            context.pending.append(buffer)
        case .streaming:
            guard let upstream = context.upstream else { return }
            if context.sentBody != nil, !context.sentBody!.append(buffer) { context.sentBody = nil }
            upstream.writeBody(buffer)
            if !upstream.isWritable { downstream?.setReadsPaused(true) }
        case .complete:
            break
        }
    }

    /// The client's body ended. Its trailers are not forwarded, as nginx and Envoy do not
    /// forward them: an upstream that merges them into the head would take them for fields
    /// the gateway checked (`X-Forwarded-For`, `Host`).
    func requestEnd() {
        context.requestEnded = true
        if let copy = context.mirror.take(), let mirror = context.route?.mirror { sendMirror(copy, to: mirror.service) }
        if context.policiesPassed, context.bodySchema != nil, context.hasBody, context.requestSide == .buffering, context.attempts == 0,
            !context.finished
        {
            checkBody()
            return
        }
        if context.requestSide == .streaming, let upstream = context.upstream {
            upstream.writeEnd()
            context.requestSide = .complete
            // A request without a body was complete when its head went (``send(on:flush:now:)``).
            if context.hasBody { armResponseTimeout(now: .now()) }
        }
    }

    /// The client's read batch ended: send what was written upstream.
    func downstreamReadComplete() {
        context.upstream?.flush()
    }

    func downstreamWritabilityChanged(_ writable: Bool) {
        context.upstream?.setReadsPaused(!writable)
    }

    /// The client went away (or broke the protocol): cancel the upstream exchange; its
    /// connection is not reused. 499 is nginx's "client closed request".
    func downstreamClosed(status: Int = 499, reason: LocalReason = .clientClosed) {
        guard !context.finished else { return }
        if context.tunnelStarted != nil {
            endTunnel(nil)  // the client's close ends a tunnel as any other close does
            return
        }
        if reason == .clientClosed { loop.metrics.add(.clientAborts) }
        context.status = status
        context.outcome = reason
        abandonUpstream()
        complete()
    }

    /// The request broke the protocol in its body: say what was wrong if the response has not
    /// started, and end the exchange.
    func requestBroke(_ response: LocalResponse) {
        guard !context.finished else { return }
        if context.responseSide == .waiting {
            respondLocally(response)
        } else {
            downstreamClosed(status: Int(response.status.code), reason: response.reason)
        }
    }

    // MARK: 8. The response, from the upstream

    /// Bytes came from the upstream, read at `now` (once per read, for all the parts they hold).
    func upstreamRead(at now: NIODeadline) {
        context.lastActivity = now
    }

    /// The response head. One method per part rather than one taking an enum of them:
    /// wrapping a head in an enum copied it, with a retain and a release of its buffer.
    func upstreamReceivedHead(_ head: UpstreamResponseHead) {
        context.responseDeadline = .distantFuture
        context.endpoint?.answered()
        context.sentBody = nil
        let code = head.code
        if code == 101, let upgrade = context.upgrade {
            switchToTunnel(head, upgrade: upgrade)
            return
        }
        if downstream?.requiresSwitch == true, (200..<300).contains(code) {
            // A 2xx would tell an HTTP/2 client its tunnel is open (RFC 8441 §5); the upstream
            // answered without switching.
            context.upstream?.keepAlive = false
            attemptFailed(.gatewayError, reason: .upstreamProtocolError, canRetry: false)
            return
        }
        if (502...504).contains(code), context.responseSide == .waiting,
            context.settings.retry.shouldRetry(after: .gatewayError, attempts: context.attempts, method: method.rawValue, hasBody: context.hasBody)
        {
            context.upstream?.keepAlive = false
            attemptFailed(.gatewayError, reason: .upstreamErrorResponse)
            return
        }
        if let started = context.upstreamStarted { context.upstreamMs = context.lastActivity.milliseconds(since: started) }
        context.status = code
        context.responseSide = .streaming
        // The parser has left out the hop-by-hop fields and added the request's ID.
        guard !context.responseEdits.isEmpty || context.serverTiming else {
            downstream?.writeResponseHead(head)
            return
        }
        var headers = head.headers
        context.responseEdits.apply(to: &headers)
        if context.serverTiming { headers.add(name: "server-timing", value: serverTimingHeader(now: context.lastActivity)) }
        var edited = head
        edited.fields = .built(headers)
        downstream?.writeResponseHead(edited)
    }

    func upstreamReceivedBody(_ buffer: ByteBuffer) {
        guard context.responseSide == .streaming, let downstream else { return }
        context.responseBytes += buffer.readableBytes
        downstream.writeResponseBody(buffer)
        if !downstream.isWritable { context.upstream?.setReadsPaused(true) }
    }

    /// `now`: when the read that ended the response began.
    func upstreamReceivedEnd(_ trailers: HTTPHeaders?, at now: NIODeadline) {
        guard context.responseSide == .streaming else { return }
        context.responseSide = .complete
        downstream?.writeResponseEnd(trailers)
        finishUpstream()
        complete(now: now)
    }

    func upstreamReadComplete() {
        downstream?.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if context.requestSide == .streaming { downstream?.setReadsPaused(!writable) }
    }

    /// The upstream connection closed or failed before the response ended.
    func upstreamClosed(error: (any Error)?) {
        guard !context.finished, context.responseSide != .complete else { return }
        if context.tunnelStarted != nil {
            endTunnel(nil)
            return
        }
        context.endpoint?.requestEnded()
        context.upstream = nil
        if let ended = error as? HTTP2StreamEnded, ended.wasRefused {
            if let sent = context.sentBody.take() {
                // Never processed, and its body is at hand: as safe to send elsewhere as a
                // request whose connection was never made.
                context.pending = sent.parts + context.pending
                attemptFailed(.connectFailure, reason: .upstreamRefusedStream)
            } else {
                attemptFailed(.reset, reason: .upstreamRefusedStream)
            }
        } else if error is HTTPParserError {
            // Nothing of it reached the client: as safe to retry as a reset (an idempotent
            // request elsewhere), as Envoy's `reset` covers an upstream's protocol error.
            attemptFailed(.reset, reason: .upstreamProtocolError)
        } else if let error, UpstreamTLSFailure.isRefusal(error), let endpoint = context.endpoint {
            // A TLS 1.3 server checks the client's certificate after gantry's side of the
            // handshake is done, and refuses with an alert on the first read.
            context.outcomeDetail = "\(endpoint.address): \(UpstreamTLSFailure(underlying: error))"
            attemptFailed(.reset, reason: .upstreamTLSFailure)
        } else {
            loop.metrics.add(.upstreamResets)
            attemptFailed(.reset, reason: .upstreamReset)
        }
    }

    /// Called on the loop's sweep: the response-head timeout and the stream idle timeout.
    func checkTimeouts(now: NIODeadline) {
        guard !context.finished else { return }
        if let started = context.tunnelStarted {
            checkTunnelTimeouts(now: now, started: started)
        } else if let deadline = context.callDeadline, now >= deadline {
            callDeadlinePassed()
        } else if now >= context.responseDeadline {
            context.responseDeadline = .distantFuture
            loop.metrics.add(.upstreamTimeouts)
            if let endpoint = context.endpoint,
                endpoint.failedLocally(now: now.uptimeNanoseconds, policy: context.cluster.settings.outlierDetection)
            {
                loop.metrics.add(.outlierEjections)
            }
            abandonUpstream(timedOut: true)
            attemptFailed(.timeout, reason: .upstreamTimeout)
        } else if context.requestSide != .buffering, now - context.lastActivity >= TimeAmount(context.cluster.settings.idleTimeout) {
            loop.metrics.add(.upstreamTimeouts)
            abandonUpstream(timedOut: true)
            attemptFailed(.timeout, reason: .streamIdleTimeout, canRetry: false)
        }
    }

    /// A gRPC call's deadline passed: the upstream's stream is reset, and the client hears
    /// DEADLINE_EXCEEDED, in trailers if its response has begun.
    private func callDeadlinePassed() {
        context.callDeadline = nil
        loop.metrics.add(.upstreamTimeouts)
        guard context.responseSide == .streaming else {
            abandonUpstream(timedOut: true)
            respondLocally(.upstreamFailure(.deadlineExceeded))
            return
        }
        abandonUpstream(timedOut: true)
        context.outcome = .deadlineExceeded
        context.responseSide = .complete
        downstream?.writeResponseEnd(LocalResponse.upstreamFailure(.deadlineExceeded).forGRPC().grpcTrailers)
        downstream?.flush()
        complete()
    }

    // MARK: A switched protocol (a WebSocket)

    /// Whether the request asks the upstream to switch protocols: a 101 is then its answer.
    var isUpgrading: Bool { context.upgrade != nil }

    /// The upstream switched (101): the client gets the 101, and from now on both connections
    /// carry the new protocol's bytes as they come, each way with backpressure, until either
    /// side closes or a tunnel timeout ends it. The request stays in flight to its endpoint
    /// all that time (a pod's drain waits for it) and is logged once, at its end.
    private func switchToTunnel(_ head: UpstreamResponseHead, upgrade: String) {
        if let started = context.upstreamStarted { context.upstreamMs = context.lastActivity.milliseconds(since: started) }
        context.status = 101
        context.responseSide = .streaming
        context.requestSide = .streaming
        context.tunnelStarted = context.lastActivity
        if upgrade.lowercased().hasPrefix("websocket") { context.webSocketFrames = (WebSocketFrameBoundary(), WebSocketFrameBoundary()) }
        loop.metrics.add(.tunnels)
        loop.metrics.add(.openTunnels)
        var headers = head.headers
        headers.add(name: "connection", value: "upgrade")
        headers.add(name: "upgrade", value: upgrade)
        var switched = head
        switched.fields = .built(headers)
        downstream?.writeResponseHead(switched)
        downstream?.switchToTunnel()
        // What the client sent before the switch (an HTTP/2 client's first frames) goes first.
        for early in context.pending { tunnelFromClient(early) }
        context.pending.removeAll()
        // Reading was held back while the connection was made; the client speaks now.
        downstream?.setReadsPaused(!(context.upstream?.isWritable ?? false))
    }

    /// The client's bytes, after the switch.
    func tunnelFromClient(_ buffer: ByteBuffer) {
        guard let upstream = context.upstream else { return }
        context.requestBytes += buffer.readableBytes
        loop.metrics.add(.tunnelBytesFromClients, buffer.readableBytes)
        if context.webSocketFrames != nil { buffer.withUnsafeReadableBytes { context.webSocketFrames!.fromClient.consume($0) } }
        context.lastActivity = .now()
        upstream.writeTunnelBytes(buffer)
        if !upstream.isWritable { downstream?.setReadsPaused(true) }
    }

    /// The upstream's bytes, after the switch.
    func tunnelFromUpstream(_ buffer: ByteBuffer) {
        guard let downstream else { return }
        context.responseBytes += buffer.readableBytes
        loop.metrics.add(.tunnelBytesFromUpstreams, buffer.readableBytes)
        if context.webSocketFrames != nil { buffer.withUnsafeReadableBytes { context.webSocketFrames!.fromUpstream.consume($0) } }
        downstream.writeTunnelBytes(buffer)
        if !downstream.isWritable { context.upstream?.setReadsPaused(true) }
    }

    /// Ends a tunnel from either side: the other side's connection closes once what was
    /// written to it has gone out. `reason`: why gantry ended it, if gantry did.
    private func endTunnel(_ reason: LocalReason?) {
        guard context.tunnelStarted != nil, !context.finished else { return }
        loop.metrics.subtract(.openTunnels)
        if let reason { context.outcome = reason }
        // No flush here: this may run inside either side's flush (a write that finds the peer
        // gone closes the channel at once); the client's connection flushes as it closes.
        if let upstream = context.upstream.take() {
            upstream.exchange = nil
            upstream.close()
            context.endpoint?.requestEnded()
        }
        context.responseSide = .complete
        complete()
    }

    /// Ends the tunnel because its endpoint is leaving or gantry is stopping, and the drain
    /// period is over: a WebSocket's two ends each get a close frame with 1001 (going away,
    /// RFC 6455 §7.4.1) where one fits between frames, then both connections close.
    /// `endpoint`: only a tunnel to that endpoint.
    func closeTunnelGoingAway(ifTo endpoint: EndpointAddress? = nil) {
        guard context.tunnelStarted != nil, !context.finished else { return }
        if let endpoint, context.endpoint?.address != endpoint { return }
        if let frames = context.webSocketFrames {
            if frames.fromUpstream.atBoundary { downstream?.writeTunnelBytes(ByteBuffer(bytes: WebSocketFrameBoundary.goingAwayFromServer)) }
            if frames.fromClient.atBoundary {
                let mask = loop.drawRandom { UInt32(truncatingIfNeeded: $0.next()) }
                context.upstream?.writeTunnelBytes(ByteBuffer(bytes: WebSocketFrameBoundary.goingAwayFromClient(mask: mask)))
                context.upstream?.flush()
            }
        }
        endTunnel(.tunnelDrained)
    }

    /// The tunnel's deadlines, from the loop's sweep: its idle timeout and maximum duration.
    private func checkTunnelTimeouts(now: NIODeadline, started: NIODeadline) {
        let tunnel = context.settings.tunnel
        if now - context.lastActivity >= TimeAmount(tunnel.idleTimeout) {
            endTunnel(.tunnelIdleTimeout)
        } else if let limit = tunnel.maxDuration, now - started >= TimeAmount(limit) {
            endTunnel(.tunnelMaxDuration)
        }
    }

    // MARK: Failed attempts and retries

    /// `timedOut`: the request's own deadline passed, which may say more about the connection
    /// than about the request (``Upstream/timedOut()``).
    private func abandonUpstream(timedOut: Bool = false) {
        guard let upstream = context.upstream else { return }
        if timedOut { upstream.timedOut() }
        context.upstream = nil
        upstream.exchange = nil
        upstream.close()
        context.endpoint?.requestEnded()
    }

    /// An attempt failed: back to choosing an endpoint when the route's retry policy allows,
    /// else a 502 or 504, or a cut when part of the response has gone.
    private func attemptFailed(_ failure: AttemptFailure, reason: LocalReason, canRetry: Bool = true) {
        context.outcome = reason
        if canRetry, context.responseSide == .waiting, !context.finished,
            context.settings.retry.shouldRetry(after: failure, attempts: context.attempts, method: method.rawValue, hasBody: context.hasBody)
        {
            loop.metrics.add(.retries)
            abandonUpstream()
            context.requestSide = .buffering
            chooseEndpoint()
            return
        }
        guard context.responseSide == .waiting else {
            // Part of the response is already with the client: the only honest signal left is
            // to close the connection.
            downstream?.cutShort()
            complete()
            return
        }
        respondLocally(.upstreamFailure(reason))
    }

    // MARK: 9. Finishing

    /// Gantry's own answer, from any step: the request goes no further.
    func respondLocally(_ response: LocalResponse) {
        var response = context.isGRPC ? response.forGRPC() : response
        context.status = Int(response.status.code)
        context.outcome = response.reason
        context.answeredLocally = true
        if context.serverTiming {
            let gateway = NIODeadline.now().milliseconds(since: context.started)
            response.extraHeaders.append(("server-timing", "gateway;desc=\"\(response.reason.label)\";dur=\(millisecondsText(gateway))"))
        }
        abandonUpstream()
        context.responseSide = .complete
        downstream?.writeLocalResponse(response, requestID: context.id, requestComplete: context.requestEnded || !context.hasBody)
        complete()
    }

    /// Returns the upstream connection to the pool when both messages ended cleanly.
    private func finishUpstream() {
        guard let upstream = context.upstream.take() else { return }
        upstream.exchange = nil
        upstream.setReadsPaused(false)
        context.endpoint?.requestEnded()
        // A connection that carried a request to switch protocols is not used again, switched
        // or not: some servers (NIO's decoder among them) read nothing after such a request.
        upstream.finished(reusable: context.requestSide == .complete && context.upgrade == nil, now: context.lastActivity)
    }

    private func complete(now: NIODeadline = .now()) {
        guard !context.finished else { return }
        context.finished = true
        finish(now: now)
        let downstream = self.downstream.take()
        downstream?.exchangeEnded(self, now: now)
    }

    /// The exchange has ended and been logged: it lets go of the request's head, whose lines
    /// are a slice of the client's read buffer (a spare exchange must not keep that buffer
    /// from being read into again).
    func letGoOfRequest() {
        context.upstreamHead = nil
        context.pending = []
    }
}
