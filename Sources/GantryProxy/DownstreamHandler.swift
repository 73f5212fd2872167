import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1
import Tracing

/// One client connection: admits each request, hands it to a ``ProxyExchange`` (or answers it
/// locally), writes responses in request order, and manages keep-alive, pipelining, read
/// backpressure, idle timeout and draining.
///
/// Pipelined requests are queued here rather than by NIO's `HTTPServerPipelineHandler`, which
/// turns read interest off and on around every response (two extra `epoll_ctl` per request).
final class DownstreamHandler: ChannelDuplexHandler {
    /// Bytes on HTTP/1 connections; an HTTP/2 stream's parts come through ``received(_:)``.
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    enum Current {
        case idle
        case proxying(ProxyExchange)
        /// The response is done but the request body is still arriving: read and drop it, up
        /// to a budget, so the client sees the response instead of a reset.
        case discarding
    }

    /// Strong, not `unowned`: each use of an `unowned` reference checks and counts the object,
    /// dozens of times a request. The loop's table of connections lets go of the handler when its channel goes.
    let loop: LoopContext
    let listener: ListenerSettings
    /// An HTTP/2 stream: one request, no keep-alive or pipelining of its own.
    let multiplexed: Bool
    /// `Strict-Transport-Security` for every response, on TLS listeners with HSTS.
    let hsts: String?
    private(set) var context: ChannelHandlerContext?
    private(set) var clientIP = "unknown"

    private(set) var current = Current.idle
    /// HTTP/1.1 responses as bytes (unused on HTTP/2 streams).
    var output: HTTP1MessageWriter
    /// The channel's, read once: `context.channel.allocator` costs an existential call and a
    /// retain of the channel on every message.
    private(set) var allocator = ByteBufferAllocator()
    private(set) var requestInProgress = false
    private var responseInProgress = false
    private(set) var requestVersion = HTTPVersion.http1_1
    private(set) var requestMethod = HTTPMethod.GET
    private(set) var requestHasBody = false
    var keepAlive = true
    private var discardBudget = 0
    var request = RequestFacts()
    /// The request's span, while spans are recorded (`loop.isTracing`). Not in ``request``: an
    /// optional existential there was copied through its value witnesses with the facts.
    var span: (any Span)?

    /// What arrived while an earlier response was still going out (pipelining).
    private enum Inbound {
        case part(HTTPRequestParser.Part)
        /// Bytes the parser rejected, answered in turn; the connection then closes. Boxed: parts need not be its size.
        indirect case malformed(LocalResponse)
    }

    private var queued = CircularBuffer<Inbound>()
    /// HTTP/1 requests from the connection's bytes (unused on HTTP/2 streams).
    private var parser: HTTPRequestParser
    /// The parser rejected the bytes: nothing after them is read as a request.
    private var parserFailed = false
    private var pausedByExchange = false
    private var pausedForPipelining = false
    private var readPending = false
    private var idleDeadline = NIODeadline.distantFuture
    /// Armed when the bytes of a request head start arriving; the head must be complete by then.
    private var headDeadline = NIODeadline.distantFuture
    private var lingerDeadline = NIODeadline.distantFuture
    private var closing = false
    private var active = true
    /// Between a read's first `channelRead` and its `channelReadComplete`.
    private(set) var isInReadBatch = false
    /// Status of the response just finished, for the status counters.
    var lastStatus = 0

    init(loop: LoopContext, listener: ListenerSettings, multiplexed: Bool = false) {
        self.loop = loop
        self.listener = listener
        self.multiplexed = multiplexed
        self.hsts = listener.tls?.hsts
        self.output = HTTP1MessageWriter(spare: loop.spareWriteBuffer)
        self.parser = HTTPRequestParser(maxHeadSize: loop.snapshot.limits.maxHeadSize, maxHeaderCount: loop.snapshot.limits.maxHeaderCount)
    }

    /// Kept from writability events rather than read from the channel on every body part.
    private(set) var isWritable = false

    /// Response bytes written but not yet taken by the client's socket.
    var bufferedOutboundBytes: Int {
        (try? context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    // MARK: Connection lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        isWritable = context.channel.isWritable
        if context.channel.isActive { becameActive(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        becameActive(context)
        context.fireChannelActive()
    }

    /// Registered only once active: a channel closed before it became active never sees
    /// `channelInactive`, and must not stay in the loop's table. (The connection limits were
    /// checked at accept, by ``ConnectionGate``.)
    private func becameActive(_ context: ChannelHandlerContext) {
        guard loop.connections[ObjectIdentifier(self)] == nil, active else { return }
        if let address = context.channel.remoteAddress { clientIP = address.ipAddress ?? "unknown" }
        loop.connections[ObjectIdentifier(self)] = self
        if multiplexed { return }
        idleDeadline = .now() + loop.idleTimeout
        if loop.draining { drain() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
        self.context = nil
        isWritable = false
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        if case .proxying(let exchange) = current {
            current = .idle
            exchange.downstreamClosed()
        }
        queued.removeAll()
        context.fireChannelInactive()
    }

    private func forget() {
        active = false
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else {
            context.close(promise: nil)
            return
        }
        requestMalformed(parserError)
    }

    /// A malformed request never reaches an upstream: answered in its turn, then the connection closes.
    private func requestMalformed(_ parserError: HTTPParserError) {
        parserFailed = true
        loop.metrics.add(.malformedRequests)
        let response: LocalResponse
        switch parserError {
        case .headerOverflow:
            response = LocalResponse(
                status: .requestHeaderFieldsTooLarge, reason: "header_too_large",
                message: "the request head is larger than \(loop.snapshot.limits.maxHeadSize) bytes or has more than \(loop.snapshot.limits.maxHeaderCount) headers",
                closesConnection: true)
        default:
            response = LocalResponse.badRequest("malformed HTTP request (\(parserError))")
        }
        enqueueOrHandle(.malformed(response))
    }

    /// The request being read broke in its body: say what was wrong if its response has not
    /// started, cancel the upstream exchange, and close.
    private func requestBroke(_ response: LocalResponse) {
        keepAlive = false
        switch current {
        case .proxying(let exchange):
            if !exchange.hasForwardedResponse {
                writeLocalResponse(response, requestID: exchange.requestID, requestComplete: true)
            }
            exchange.downstreamClosed(status: Int(response.status.code), detail: response.reason)
        case .discarding, .idle:
            closeNow()
        }
    }

    /// A head the parser rejected: log it and answer with the connection closing.
    private func answerMalformed(_ response: LocalResponse) {
        keepAlive = false
        requestMethod = .GET  // not the previous request's: an answer to HEAD would lose its body
        request = RequestFacts(id: loop.newRequestID(), started: .now(), wallClock: LoopContext.wallClock())
        responseInProgress = true
        logLocal(status: Int(response.status.code), detail: response.reason)
        writeLocalResponse(response, requestID: request.id, requestComplete: true)
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        isInReadBatch = true
        // Lingering: read and drop until the client closes. After a malformed request, what
        // follows is not a request.
        if closing || parserFailed { return }
        do {
            try parser.parse(unwrapInboundIn(data)) { part in
                if !closing { enqueueOrHandle(.part(part)) }
            }
        } catch let error as HTTPParserError {
            requestMalformed(error)
        } catch {
            closeNow()
        }
    }

    /// A request part from an HTTP/2 stream. NIO's codec marks a body without content-length
    /// as chunked, so the upstream request is framed.
    func received(_ part: HTTPServerRequestPart) {
        isInReadBatch = true
        if closing { return }
        switch part {
        case .head(let head): enqueueOrHandle(.part(.head(ClientRequestHead(head), keepAlive: true)))
        case .body(let buffer): enqueueOrHandle(.part(.body(buffer)))
        case .end(let trailers): enqueueOrHandle(.part(.end(trailers)))
        }
    }

    private func enqueueOrHandle(_ item: Inbound) {
        if !queued.isEmpty {
            queued.append(item)
        } else if !handle(item) {
            queued.append(item)
            pausedForPipelining = true
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        isInReadBatch = false
        timeHead()
        // Last in the pipeline: nothing after it wants the event.
        if case .proxying(let exchange) = current { exchange.downstreamReadComplete() }
    }

    /// Reads are held back while paused, and asked for again on resuming. (Pausing with the
    /// channel's `autoRead` instead stalled a transfer under backpressure now and then.)
    func read(context: ChannelHandlerContext) {
        if pausedByExchange || pausedForPipelining {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        if case .proxying(let exchange) = current { exchange.downstreamWritabilityChanged(isWritable) }
        context.fireChannelWritabilityChanged()
    }

    /// Handles one request part. Returns false for a head that must wait until the response
    /// before it is finished (pipelining: responses go out in request order).
    private func handle(_ item: Inbound) -> Bool {
        let part: HTTPRequestParser.Part
        switch item {
        case .malformed(let response):
            // Parts are handled in the order of the bytes: a request still being read when the
            // error comes is the one that broke; otherwise its head was bad, and it is answered
            // in its turn.
            if requestInProgress {
                requestBroke(response)
            } else if responseInProgress {
                return false
            } else {
                answerMalformed(response)
            }
            return true
        case .part(let value):
            part = value
        }
        switch part {
        case .head(let head, let keepAlive):
            if responseInProgress || requestInProgress { return false }
            startRequest(head, keepAlive: keepAlive)
        case .body(let buffer):
            switch current {
            case .proxying(let exchange): exchange.requestBody(buffer)
            case .discarding:
                discardBudget -= buffer.readableBytes
                if discardBudget < 0 { closeNow() }
            case .idle: break
            }
        case .end:
            requestInProgress = false
            switch current {
            case .proxying(let exchange): exchange.requestEnd()
            case .discarding:
                current = .idle
                if !responseInProgress { responseDone() }
            case .idle: break
            }
        }
        return true
    }

    private func startRequest(_ head: ClientRequestHead, keepAlive requestKeepsAlive: Bool) {
        idleDeadline = .distantFuture
        headDeadline = .distantFuture
        requestInProgress = true
        responseInProgress = true
        requestVersion = head.version
        requestMethod = head.method
        if !multiplexed, !requestKeepsAlive || loop.draining { keepAlive = false }
        loop.metrics.add(.requests)

        let clientID = head.facts.requestID
        let keptClientID = clientID.map(RequestID.isSane) ?? false
        request = RequestFacts(
            id: keptClientID ? .client(clientID!) : loop.newRequestID(), started: .now(), wallClock: loop.accessLog == nil ? 0 : LoopContext.wallClock(),
            method: head.method)
        // Through `?.`: binding the optional tracer would copy its existential on every request.
        if loop.isTracing { span = loop.tracer?.startServerSpan(method: request.methodName, headers: head.headers) }

        switch RequestAdmission.admit(
            head, snapshot: loop.snapshot, listener: listener, client: clientIP, requestID: request.id,
            keptClientID: keptClientID, policies: loop.policies)
        {
        case .proxy(var plan):
            plan.serverTiming = traceUpstream(&plan.upstreamHead, facts: head.facts)
            if loop.isTracing, let span {
                // Replaces the `traceparent` just written with the recorded span's; the one
                // above stays when the tracer records nothing (a sampler that drops everything
                // injects nothing), and it has already dropped a stale `tracestate`.
                loop.tracer?.propagate(span, into: &plan.upstreamHead.built.headers)
            }
            request.host = plan.host
            request.path = plan.path
            requestHasBody = plan.hasBody
            // Admission without policies takes a microsecond or two: not worth reading the clock.
            let admitted = plan.settings.policies.isEmpty ? request.started : NIODeadline.now()
            let exchange = newExchange(plan: consume plan, method: head.method)
            current = .proxying(exchange)
            exchange.start(at: admitted)
        case .reject(let response, let host, let path):
            request.host = host
            request.path = path
            requestHasBody = Framing(head.facts).hasBody
            switch response.reason {
            case "no_route": loop.metrics.add(.noRoute)
            case "unauthorized": loop.metrics.add(.unauthorized)
            case "rate_limited": loop.metrics.add(.rateLimited)
            case "https_redirect": loop.metrics.add(.redirects)
            default: loop.metrics.add(.malformedRequests)
            }
            var response = response
            if tracingRequested(head.facts, incoming: head.facts.traceparent.flatMap { TraceContext(header: $0) }) {
                let gateway = NIODeadline.now().milliseconds(since: request.started)
                response.extraHeaders.append(("server-timing", "gateway;desc=\"\(response.reason)\";dur=\(millisecondsText(gateway))"))
            }
            if response.closesConnection { keepAlive = false }
            logLocal(status: Int(response.status.code), detail: response.reason)
            writeLocalResponse(response, requestID: request.id, requestComplete: false)
        }
    }

    // MARK: Flow control (called by the exchange)

    func setReadsPaused(_ paused: Bool) {
        pausedByExchange = paused
        if !paused { resumeReadingIfAllowed() }
    }

    /// The response can no longer be completed: close so the client sees the truncation.
    func abort() {
        keepAlive = false
        closeNow()
    }

    func exchangeFinished(_ exchange: ProxyExchange, now: NIODeadline) {
        log(exchange, now: now)
        keepForReuse(exchange)
        pausedByExchange = false
        current = .idle
        responseDone(now: now)
    }

    // MARK: Between requests

    func responseDone(now: NIODeadline = .now()) {
        responseInProgress = false
        loop.metrics.recordStatus(lastStatus)
        guard active else { return }
        flush()
        if multiplexed {
            // The stream closes by itself once both sides have ended; a request body still
            // arriving is cut short with RST_STREAM, as RFC 9113 §8.1 allows.
            if requestInProgress { closeNow() }
            return
        }
        if requestInProgress && keepAlive {
            // The response went out before the request body ended: drop the rest of the body,
            // then carry on with the next request.
            current = .discarding
            discardBudget = Self.discardLimit
            resumeReadingIfAllowed()
            return
        }
        guard keepAlive else {
            closeGracefully()
            return
        }
        idleDeadline = now + loop.idleTimeout
        drainQueue()
    }

    private func drainQueue() {
        // The queued parts are handled as one read batch: what they write upstream waits for the
        // end, so a request that turns out malformed further on never leaves.
        let wasInReadBatch = isInReadBatch
        isInReadBatch = true
        while let part = queued.first, !closing {
            guard handle(part) else { break }
            queued.removeFirst()
        }
        isInReadBatch = wasInReadBatch
        if case .proxying(let exchange) = current { exchange.downstreamReadComplete() }
        if queued.isEmpty {
            pausedForPipelining = false
            // A head behind the queued ones is next (a read batch's end times it, after parsing).
            if !wasInReadBatch { timeHead() }
            resumeReadingIfAllowed()
        }
    }

    /// The head's clock runs while part of a head has come, not after a whole request (a kept-alive
    /// connection waits under `idle`) nor after only the empty lines allowed between requests.
    private func timeHead() {
        if !parser.isReadingHead {
            headDeadline = .distantFuture
        } else if headDeadline == .distantFuture, !closing {
            headDeadline = .now() + TimeAmount(loop.snapshot.limits.requestHeadersTimeout)
        }
    }

    private func resumeReadingIfAllowed() {
        guard readPending, !pausedByExchange, !pausedForPipelining, let context else { return }
        readPending = false
        context.read()
    }

    /// The connection's deadlines, then its exchange's (every exchange in flight belongs to a
    /// connection, so the loop's sweep reaches them all from here).
    func checkTimeouts(now: NIODeadline) {
        if case .proxying(let exchange) = current { exchange.checkTimeouts(now: now) }
        if now >= lingerDeadline {
            closeNow()
        } else if now >= headDeadline, !requestInProgress, !responseInProgress, !closing {
            headDeadline = .distantFuture
            loop.metrics.add(.headerTimeouts)
            keepAlive = false
            lastStatus = 408
            requestMethod = .GET
            writeLocalResponse(
                LocalResponse(
                    status: .requestTimeout, reason: "request_header_timeout",
                    message: "the request head did not arrive within \(loop.snapshot.limits.requestHeadersTimeout)", closesConnection: true),
                requestID: loop.newRequestID(), requestComplete: true)
        } else if now >= idleDeadline, !requestInProgress, !responseInProgress {
            idleDeadline = .distantFuture
            closeGracefully()
        }
    }

    /// Graceful shutdown: close now if idle, else after the response in flight.
    func drain() {
        keepAlive = false
        if !requestInProgress, !responseInProgress, queued.isEmpty { closeGracefully() }
    }

    /// Closes after everything written so far has gone out, the way nginx's lingering close
    /// does: send FIN, then read and drop what the client still sends until it closes too (or
    /// `lingerTime` passes). Closing at once would make the kernel answer unread bytes with a
    /// reset, and the client could lose the response it has not read yet.
    private func closeGracefully() {
        guard let context, !closing else { return }
        closing = true
        idleDeadline = .distantFuture
        lingerDeadline = .now() + Self.lingerTime
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: promise)
        promise.futureResult.assumeIsolated().whenFailure { [self] _ in closeNow() }
        pausedByExchange = false
        pausedForPipelining = false
        resumeReadingIfAllowed()
    }

    private func closeNow() {
        closing = true
        context?.close(promise: nil)
    }
}
