import Foundation
import GantryConfig
import GantryCore
import GantryHTTP
import NIOCore
import NIOHTTP1
import NIOPosix

/// One proxied request: picks an endpoint, gets a connection, relays the request and the
/// response with backpressure in both directions, retries when that is safe, and answers with a
/// JSON error when the upstream cannot. Lives on its connection's event loop.
///
/// The loop keeps ended exchanges and starts new requests with them when nothing else holds
/// them (``restart(plan:requestID:method:started:downstream:)``): every stored property is set
/// there as in `init`.
final class ProxyExchange {
    private enum RequestSide {
        /// Not attached to an upstream yet: body parts wait in `pending` (reads are paused, so
        /// only what one read brought in is held).
        case buffering
        case streaming
        case complete
    }

    private enum ResponseSide {
        case waiting
        case streaming
        case complete
    }

    /// Strong, as in ``DownstreamHandler``: an exchange ends with its request, or soon after
    /// with the callback (a connect, an introspection) that still holds it.
    let loop: LoopContext
    var downstream: DownstreamHandler?
    var plan: ProxyPlan
    private(set) var requestID: RequestIdentifier
    private(set) var started: NIODeadline
    private(set) var method: HTTPMethod

    private var requestSide = RequestSide.buffering
    private var responseSide = ResponseSide.waiting
    private var requestEnded = false
    /// An array, not a `CircularBuffer`: that allocates sixteen slots up front, and most
    /// requests never wait with a body.
    private var pending: [ByteBuffer] = []
    private(set) var requestBytes = 0
    private(set) var responseBytes = 0

    private var attempts = 0
    /// Endpoints tried before the current one; the current one is ``endpoint``. Kept apart
    /// so that a request answered at the first try allocates no list.
    private var tried: [EndpointAddress] = []
    private var endpoint: EndpointState?
    private var upstream: UpstreamHandler?
    private(set) var upstreamStarted: NIODeadline?
    /// When the gateway was done with the request and the first endpoint was chosen.
    private(set) var gatewayDone: NIODeadline?
    private var upstreamMs: Double?
    private var responseDeadline = NIODeadline.distantFuture
    private var lastActivity: NIODeadline
    private(set) var status = 0
    private(set) var detail: String?
    private(set) var finished = false

    init(plan: ProxyPlan, requestID: RequestIdentifier, method: HTTPMethod, started: NIODeadline, loop: LoopContext, downstream: DownstreamHandler) {
        self.plan = plan
        self.requestID = requestID
        self.method = method
        self.started = started
        self.lastActivity = started
        self.loop = loop
        self.downstream = downstream
    }

    /// This exchange again, for another request on its loop: each request allocated an
    /// exchange, and with dozens in flight they were freed in bursts larger than the
    /// allocator's per-size cache. Only for an ended exchange nothing else holds.
    func restart(plan: consuming ProxyPlan, requestID: RequestIdentifier, method: HTTPMethod, started: NIODeadline, downstream: DownstreamHandler) {
        precondition(finished, "only an ended exchange starts again")
        self.plan = plan
        self.requestID = requestID
        self.method = method
        self.started = started
        self.downstream = downstream
        requestSide = .buffering
        responseSide = .waiting
        requestEnded = false
        pending.removeAll()
        requestBytes = 0
        responseBytes = 0
        attempts = 0
        tried.removeAll()
        endpoint = nil
        upstream = nil
        upstreamStarted = nil
        gatewayDone = nil
        upstreamMs = nil
        responseDeadline = .distantFuture
        lastActivity = started
        status = 0
        detail = nil
        finished = false
        sentContinue = false
    }

    /// The exchange has ended and been logged: it lets go of the request's head, whose lines
    /// are a slice of the client's read buffer (a spare exchange must not keep that buffer
    /// from being read into again).
    func letGoOfRequest() {
        plan.upstreamHead.releaseClient()
    }

    var hasForwardedResponse: Bool { responseSide != .waiting }
    var endpointName: String? { endpoint?.address.description }
    var endpointAddress: EndpointAddress? { endpoint?.address }
    var attemptCount: Int { attempts }
    var upstreamTime: Double? { upstreamMs }

    /// `now`: when admission ended, the gateway's part of the request.
    func start(at now: NIODeadline) {
        proceed(now: now)
    }

    private var sentContinue = false

    /// The steps before an upstream, each of which may wait: a deferred policy check, the
    /// `100 Continue` (only once the request is allowed), the body check.
    func proceed(now: NIODeadline = .now()) {
        if let check = plan.deferred {
            switch check.kind {
            case .introspection(let token, let cacheKey): introspect(check, token: token, cacheKey: cacheKey)
            case .sharedRateLimit(let key): takeSharedToken(check, key: key)
            }
            return
        }
        if plan.expectsContinue, !sentContinue {
            sentContinue = true
            downstream?.sendContinue()
        }
        if plan.bodySchema != nil {
            // The body is read in full and checked first (its size bounded by the policy).
            if !plan.hasBody || requestEnded { checkBody() }
            return
        }
        tryNextEndpoint(now: now)
    }

    /// Checks the whole request body against the route's JSON Schema, then goes upstream.
    private func checkBody() {
        guard let schema = plan.bodySchema else { return }
        var body = ByteBuffer()
        for var part in pending { body.writeBuffer(&part) }
        let problem: String?
        if !plan.hasBody {
            problem = "a JSON body is required"
        } else if let value = try? JSONDecoder().decode(JSONValue.self, from: Data(body.readableBytesView)) {
            problem = schema.violation(of: value)
        } else {
            problem = "the body is not JSON"
        }
        if let problem {
            respondLocally(LocalResponse(status: .badRequest, reason: "invalid_body", message: problem))
            return
        }
        tryNextEndpoint()
    }

    // MARK: Request side (from the client)

    func requestBody(_ buffer: ByteBuffer) {
        requestBytes += buffer.readableBytes
        if let limit = plan.maxRequestBody, requestBytes > limit {
            // A chunked body grew past the route's limit while streaming.
            guard responseSide == .waiting else {
                downstreamClosed(status: 413, detail: "payload_too_large")
                downstream?.abort()
                return
            }
            var response = LocalResponse(status: .payloadTooLarge, reason: "payload_too_large", message: "the body is larger than \(limit) bytes")
            response.closesConnection = true
            respondLocally(response)
            return
        }
        lastActivity = .now()
        switch requestSide {
        case .buffering:
            pending.append(buffer)
        case .streaming:
            guard let upstream else { return }
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
        requestEnded = true
        if plan.bodySchema != nil, plan.deferred == nil, plan.hasBody, requestSide == .buffering, attempts == 0, !finished {
            checkBody()
            return
        }
        if requestSide == .streaming, let upstream {
            upstream.writeEnd()
            requestSide = .complete
            // A request without a body was complete when its head went (``attach``).
            if plan.hasBody { armResponseTimeout(now: .now()) }
        }
    }

    /// The client's read batch ended: send what was written upstream.
    func downstreamReadComplete() {
        upstream?.flush()
    }

    func downstreamWritabilityChanged(_ writable: Bool) {
        upstream?.setReadsPaused(!writable)
    }

    /// The client went away (or broke the protocol): cancel the upstream exchange; its
    /// connection is not reused. 499 is nginx's "client closed request".
    func downstreamClosed(status: Int = 499, detail: String = "client_closed") {
        guard !finished else { return }
        if status == 499 { loop.metrics.add(.clientAborts) }
        self.status = status
        self.detail = detail
        abandonUpstream()
        complete()
    }

    // MARK: Choosing an endpoint and connecting

    private func tryNextEndpoint(now: NIODeadline = .now()) {
        if gatewayDone == nil { gatewayDone = now }
        if let previous = endpoint { tried.append(previous.address) }
        let serviceIndex = plan.route.service
        let set = loop.endpoints[serviceIndex]
        var cursor = loop.cursors[serviceIndex]
        // Only a consistent-hash balancer reads a key: calling into the plan, a stored struct,
        // copies it first (a retain of each of its fields), so other balancers skip the call.
        var key: UInt64?
        if case .consistentHash(let source) = set.balancer.kind { key = plan.hashKey(source, clientIP: downstream?.clientIP) }
        let excluded = set.excluded(tried: tried, now: now.uptimeNanoseconds)
        let pick = loop.drawRandom { random in
            set.balancer.pick(cursor: &cursor, key: key, tried: excluded, loads: set, random: &random)
        }
        loop.cursors[serviceIndex] = cursor
        guard let index = pick else {
            loop.metrics.add(.noEndpoint)
            respondLocally(
                LocalResponse(
                    status: .serviceUnavailable, reason: "no_endpoint",
                    message: "service \(plan.service.name) has no ready endpoint"))
            return
        }
        let endpoint = set.endpoints[index]
        self.endpoint = endpoint
        attempts += 1
        if let connection = loop.pool.take(endpoint) {
            loop.metrics.add(.upstreamReused)
            // Inside the client's read batch, the flush waits for the batch's end, so a request
            // that turns out malformed later in the same batch never leaves.
            attach(connection, flush: !(downstream?.isInReadBatch ?? false), now: now)
            return
        }
        guard let socketAddress = loop.socketAddress(for: endpoint.address) else {
            attemptFailed(.connectFailure, detail: "upstream_address_unresolvable")
            return
        }
        let service = plan.service
        downstream?.setReadsPaused(true)
        loop.metrics.add(.upstreamConnects)
        let connection = UpstreamHandler(endpoint: endpoint, service: service, loop: loop)
        let attempt = attempts
        connection.connect(to: socketAddress, timeout: TimeAmount(service.connectTimeout))
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success:
                    guard !finished, attempt == attempts else {
                        // The client left, or the exchange moved on while connecting: keep the
                        // fresh connection for the next request.
                        loop.pool.release(connection, now: .now())
                        return
                    }
                    endpoint.connectSucceeded()
                    attach(connection, flush: true, now: .now())
                case .failure(let error):
                    if endpoint.connectFailed(now: NIODeadline.now().uptimeNanoseconds, policy: service.outlierDetection) {
                        loop.metrics.add(.outlierEjections)
                    }
                    guard !finished, attempt == attempts else { return }
                    loop.metrics.add(.upstreamConnectFailures)
                    let timedOut: Bool
                    if case ChannelError.connectTimeout = error { timedOut = true } else { timedOut = false }
                    attemptFailed(.connectFailure, detail: timedOut ? "upstream_connect_timeout" : "upstream_connect_failure")
                }
            }
    }

    /// `now` is when the endpoint was chosen or the connection came up, microseconds ago: one
    /// clock reading serves the attach and the response timeout.
    private func attach(_ connection: UpstreamHandler, flush: Bool, now: NIODeadline) {
        upstream = connection
        connection.exchange = self
        endpoint?.requestStarted()
        upstreamStarted = now
        lastActivity = now
        // In place: passed by value, the head was copied out of the exchange for the call (a
        // retain and a release of each of its references).
        connection.writeHead(&plan.upstreamHead)
        for buffer in pending {
            connection.writeBody(buffer)
        }
        pending.removeAll()
        if requestEnded {
            connection.writeEnd()
            requestSide = .complete
            armResponseTimeout(now: now)
        } else {
            requestSide = .streaming
            // Without a body, the request is complete once its head has gone; its end follows
            // at once from the same read, and need not read the clock again.
            if !plan.hasBody { armResponseTimeout(now: now) }
            downstream?.setReadsPaused(!connection.isWritable)
        }
        if flush { connection.flush() }
    }

    private func armResponseTimeout(now: NIODeadline) {
        responseDeadline = now + .nanoseconds(plan.settings.responseTimeoutNanoseconds)
    }

    // MARK: Response side (from the upstream)

    /// Bytes came from the upstream, read at `now` (once per read, for all the parts they hold).
    func upstreamRead(at now: NIODeadline) {
        lastActivity = now
    }

    /// One method per part rather than one taking an enum of them: wrapping a head in an enum
    /// copied it, with a retain and a release of its buffer and request ID.
    func upstreamReceivedHead(_ head: UpstreamResponseHead) {
        responseDeadline = .distantFuture
        let code = head.code
        if (502...504).contains(code), responseSide == .waiting,
            plan.settings.retry.shouldRetry(after: .gatewayError, attempts: attempts, method: method.rawValue, hasBody: plan.hasBody)
        {
            upstream?.keepAlive = false
            attemptFailed(.gatewayError, detail: "upstream_\(code)")
            return
        }
        if let started = upstreamStarted { upstreamMs = lastActivity.milliseconds(since: started) }
        status = code
        responseSide = .streaming
        // The parser has left out the hop-by-hop fields and added the request's ID.
        guard !plan.responseEdits.isEmpty || plan.serverTiming else {
            downstream?.writeResponseHead(head)
            return
        }
        var headers = head.headers
        PolicyEngine.apply(plan.responseEdits, to: &headers)
        if plan.serverTiming { headers.add(name: "server-timing", value: serverTimingHeader(now: lastActivity)) }
        var edited = head
        edited.fields = .built(headers)
        downstream?.writeResponseHead(edited)
    }

    func upstreamReceivedBody(_ buffer: ByteBuffer) {
        guard responseSide == .streaming, let downstream else { return }
        responseBytes += buffer.readableBytes
        downstream.writeResponseBody(buffer)
        if !downstream.isWritable { upstream?.setReadsPaused(true) }
    }

    /// `now`: when the read that ended the response began.
    func upstreamReceivedEnd(_ trailers: HTTPHeaders?, at now: NIODeadline) {
        guard responseSide == .streaming else { return }
        responseSide = .complete
        downstream?.writeResponseEnd(trailers)
        finishUpstream()
        complete(now: now)
    }

    func upstreamReadComplete() {
        downstream?.flush()
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if requestSide == .streaming { downstream?.setReadsPaused(!writable) }
    }

    /// The upstream connection closed or failed before the response ended.
    func upstreamClosed(error: (any Error)?) {
        guard !finished, responseSide != .complete else { return }
        endpoint?.requestEnded()
        upstream = nil
        if error is HTTPParserError {
            attemptFailed(.reset, detail: "upstream_protocol_error", canRetry: false)
        } else {
            loop.metrics.add(.upstreamResets)
            attemptFailed(.reset, detail: "upstream_reset")
        }
    }

    /// Called on the loop's sweep: the response-head timeout and the stream idle timeout.
    func checkTimeouts(now: NIODeadline) {
        guard !finished else { return }
        if now >= responseDeadline {
            responseDeadline = .distantFuture
            loop.metrics.add(.upstreamTimeouts)
            abandonUpstream()
            attemptFailed(.timeout, detail: "upstream_timeout")
        } else if requestSide != .buffering, now - lastActivity >= TimeAmount(plan.service.idleTimeout) {
            loop.metrics.add(.upstreamTimeouts)
            abandonUpstream()
            attemptFailed(.timeout, detail: "stream_idle_timeout", canRetry: false)
        }
    }

    private func abandonUpstream() {
        guard let upstream else { return }
        self.upstream = nil
        upstream.exchange = nil
        upstream.close()
        endpoint?.requestEnded()
    }

    private func attemptFailed(_ failure: AttemptFailure, detail: String, canRetry: Bool = true) {
        self.detail = detail
        if canRetry, responseSide == .waiting, !finished,
            plan.settings.retry.shouldRetry(after: failure, attempts: attempts, method: method.rawValue, hasBody: plan.hasBody)
        {
            loop.metrics.add(.retries)
            if let upstream {
                self.upstream = nil
                upstream.exchange = nil
                upstream.close()
                endpoint?.requestEnded()
            }
            requestSide = .buffering
            tryNextEndpoint()
            return
        }
        guard responseSide == .waiting else {
            // Part of the response is already with the client: the only honest signal left is
            // to close the connection.
            downstream?.abort()
            complete()
            return
        }
        respondLocally(.upstreamFailure(detail))
    }

    func respondLocally(_ response: LocalResponse) {
        status = Int(response.status.code)
        detail = response.reason
        abandonUpstream()
        responseSide = .complete
        downstream?.writeLocalResponse(response, requestID: requestID, requestComplete: requestEnded)
        complete()
    }

    /// Returns the upstream connection to the pool when both messages ended cleanly.
    private func finishUpstream() {
        guard let upstream = upstream.take() else { return }
        upstream.exchange = nil
        upstream.setReadsPaused(false)
        endpoint?.requestEnded()
        if requestSide == .complete {
            loop.pool.release(upstream, now: lastActivity)
        } else {
            upstream.close()
        }
    }

    private func complete(now: NIODeadline = .now()) {
        guard !finished else { return }
        finished = true
        let downstream = self.downstream.take()
        downstream?.exchangeFinished(self, now: now)
    }
}
