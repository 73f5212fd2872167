import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// One HTTP/1.1 client connection: parses its requests (``HTTPRequestParser``), hands each to a
/// ``ProxyExchange`` in turn, writes the responses in request order as bytes
/// (``HTTP1MessageWriter``), and manages keep-alive, pipelining, read backpressure, the head and
/// idle timeouts, lingering close and draining.
///
/// Pipelined requests are queued here rather than by NIO's `HTTPServerPipelineHandler`, which
/// turns read interest off and on around every response (two extra `epoll_ctl` per request).
final class HTTP1Connection: ChannelDuplexHandler, Downstream {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Current {
        case idle
        case proxying(ProxyExchange)
        /// The response is done but the request body is still arriving: read and drop it, up
        /// to a budget, so the client sees the response instead of a reset.
        case discarding
    }

    /// Strong, not `unowned`: each use of an `unowned` reference checks and counts the object,
    /// dozens of times a request. The loop's table of connections lets go of the handler when
    /// its channel goes.
    let loop: LoopContext
    let client: ClientSide
    /// `Strict-Transport-Security` for every response, on TLS listeners with HSTS.
    private let hsts: String?
    private(set) var context: ChannelHandlerContext?

    private(set) var current = Current.idle
    private var output: HTTP1MessageWriter
    /// The channel's, read once: `context.channel.allocator` costs an existential call and a
    /// retain of the channel on every message.
    private var allocator = ByteBufferAllocator()
    private var requestInProgress = false
    private var responseInProgress = false
    private var requestVersion = HTTPVersion.http1_1
    private var requestMethod = HTTPMethod.GET
    private var keepAlive = true
    private var discardBudget = 0

    /// What arrived while an earlier response was still going out (pipelining).
    private enum Inbound {
        case part(HTTPRequestParser.Part)
        /// Bytes the parser rejected, answered in turn; the connection then closes. Boxed: parts need not be its size.
        indirect case malformed(LocalResponse)
    }

    /// Four parts (a request's head, body and end, and one more) before it grows: NIO's default
    /// of sixteen would be held, empty, by every idle keep-alive connection.
    private var queued = CircularBuffer<Inbound>(initialCapacity: 4)
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
    /// The request in flight said it is the client's last (`Connection: close`, or HTTP/1.0
    /// without keep-alive).
    private var clientEnds = false
    /// The last response ended while its request was being parsed (a local answer): how the
    /// connection closes is decided when the parse ends and shows whether more bytes followed.
    private var closeWhenParsed = false
    private var active = true
    private(set) var isInReadBatch = false
    /// The connection switched protocols (a WebSocket): what the client sends goes upstream as
    /// it comes, and nothing on it is HTTP any more.
    private var isTunnel = false
    /// The request in flight asked to switch protocols, and its answer has not ended: what the
    /// parser holds after it waits for that answer.
    private var awaitingSwitch = false
    /// Inside `parser.parse`, whose callbacks may end an exchange: the parser is not touched
    /// again until it returns.
    private var isParsing = false
    /// Kept from writability events rather than read from the channel on every body part.
    private(set) var isWritable = false

    /// Bytes of an unwanted request body read and dropped before closing instead.
    static let discardLimit = 1 << 20
    /// How long a closing connection waits for the client to close its side.
    static let lingerTime = TimeAmount.seconds(2)

    init(loop: LoopContext, listener: ListenerSettings) {
        self.loop = loop
        self.client = ClientSide(listener: listener)
        self.hsts = listener.tls?.hsts
        self.output = HTTP1MessageWriter(spare: loop.spareWriteBuffer)
        let limits = loop.current.runtime.limits
        self.parser = HTTPRequestParser(maxHeadSize: limits.maxHeadSize, maxHeaderCount: limits.maxHeaderCount)
    }

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
        if let address = context.channel.remoteAddress { client.address = address.ipAddress ?? "unknown" }
        loop.connections[ObjectIdentifier(self)] = self
        idleDeadline = .now() + loop.idleTimeout
        if loop.draining { drain(closingIdle: true) }
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
        // The socket failed (a reset, for one): NIO closes the channel itself right after. Closed
        // from here as well, the close would pass through TLS, whose close waits for the client's
        // close_notify and holds the connection's memory for seconds after the socket is gone.
        if error is IOError { return }
        guard error is HTTPParserError || error is UnsupportedHTTPVersion else {
            context.close(promise: nil)
            return
        }
        requestMalformed(error)
    }

    /// A malformed request never reaches an upstream: answered in its turn, then the connection closes.
    private func requestMalformed(_ error: any Error) {
        parserFailed = true
        let response: LocalResponse
        switch error {
        case HTTPParserError.headerOverflow:
            let limits = loop.current.runtime.limits
            response = LocalResponse(
                .headerTooLarge,
                message: "the request head is larger than \(limits.maxHeadSize) bytes or has more than \(limits.maxHeaderCount) headers",
                closesConnection: true)
        case let version as UnsupportedHTTPVersion:
            response = LocalResponse(
                .httpVersionNotSupported, message: "\(version) is not HTTP/1; this port speaks HTTP/1.1 and HTTP/2", closesConnection: true)
        default:
            response = LocalResponse.badRequest("malformed HTTP request (\(error))")
        }
        enqueueOrHandle(.malformed(response))
    }

    /// The request being read broke in its body: its exchange says what was wrong if the
    /// response has not started, and the connection closes.
    private func requestBroke(_ response: LocalResponse) {
        keepAlive = false
        switch current {
        case .proxying(let exchange): exchange.requestBroke(response)
        case .discarding, .idle: closeNow()
        }
    }

    /// Bytes that were not a request, or a head that did not come in time: answered and logged
    /// by an exchange of their own, and the connection closes after.
    private func answerWithoutRequest(_ response: LocalResponse) {
        keepAlive = false
        requestMethod = .GET  // not the previous request's: an answer to HEAD would lose its body
        requestVersion = .http1_1
        responseInProgress = true
        let exchange = loop.takeExchange()
        current = .proxying(exchange)
        exchange.answerWithoutRequest(response, from: self)
    }

    // MARK: Reading

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        isInReadBatch = true
        // Lingering: read and drop until the client closes. After a malformed request, what
        // follows is not a request.
        if closing || parserFailed { return }
        if isTunnel {
            if case .proxying(let exchange) = current { exchange.tunnelFromClient(unwrapInboundIn(data)) }
            return
        }
        guard parse(unwrapInboundIn(data)) else { return }
        // After a request that asks to switch protocols, nothing more is read until the
        // answer says what the next bytes are (it may have come already: a local answer).
        if parser.holdsAfterUpgrade {
            if awaitingSwitch { pausedForPipelining = true } else { readHeldBytes() }
        }
    }

    /// Parses `bytes` (after what the parser kept), handing each part on; false when they broke
    /// the protocol and the connection answers or closes instead.
    private func parse(_ bytes: consuming ByteBuffer) -> Bool {
        isParsing = true
        defer {
            isParsing = false
            if closeWhenParsed {
                closeWhenParsed = false
                closeAfterLastResponse()
            }
        }
        do {
            try parser.parse(bytes) { part in
                if !closing { enqueueOrHandle(.part(part)) }
            }
            return true
        } catch where closing {
            // After the last response: what follows is dropped, whatever it is.
            parserFailed = true
        } catch where error is HTTPParserError || error is UnsupportedHTTPVersion {
            requestMalformed(error)
        } catch {
            closeNow()
        }
        return false
    }

    /// The request that asked to switch was answered without switching: what followed it is
    /// read as requests again.
    private func readHeldBytes() {
        pausedForPipelining = false
        // Another upgrade request among the held bytes, answered at once, holds again.
        while parser.holdsAfterUpgrade, !awaitingSwitch, !isTunnel, !closing {
            parser.stopHolding()
            guard parse(ByteBuffer()) else { return }
        }
        if parser.holdsAfterUpgrade, awaitingSwitch { pausedForPipelining = true }
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
                answerWithoutRequest(response)
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
        clientEnds = !requestKeepsAlive
        if !requestKeepsAlive || loop.draining { keepAlive = false }
        awaitingSwitch = head.facts.requestedUpgrade != nil
        let exchange = loop.takeExchange()
        current = .proxying(exchange)
        exchange.begin(head, from: self)
    }

    // MARK: Flow control (from the exchange)

    func setReadsPaused(_ paused: Bool) {
        pausedByExchange = paused
        if !paused { resumeReadingIfAllowed() }
    }

    func abort() {
        keepAlive = false
        if isTunnel, case .proxying(let exchange) = current {
            // The end of the grace period: a WebSocket hears why (1001) before the close.
            exchange.closeTunnelGoingAway(ifTo: nil)
            flush()
            closeNow()
            return
        }
        closeNow()
    }

    func cutShort() {
        keepAlive = false
        current = .idle  // detached first: the close must not end the exchange as the client's
        closeNow()
    }

    func exchangeEnded(_ exchange: ProxyExchange, now: NIODeadline) {
        loop.keepForReuse(exchange)
        pausedByExchange = false
        current = .idle
        awaitingSwitch = false
        if !isParsing, !isTunnel, parser.holdsAfterUpgrade { readHeldBytes() }
        responseDone(now: now)
    }

    // MARK: A switched protocol (from the exchange)

    /// RFC 9110 §7.8: `Upgrade` in an HTTP/1.0 request is ignored.
    var canSwitchProtocols: Bool { requestVersion == .http1_1 }
    /// HTTP/1.1's `Upgrade` is a request to switch, which may be ignored (RFC 9110 §7.8).
    var requiresSwitch: Bool { false }

    func switchToTunnel() {
        isTunnel = true
        keepAlive = false  // when the tunnel ends, so does the connection
        output.startTunnel()
        let held = parser.takeHeldBytes()
        pausedForPipelining = false
        if held.readableBytes > 0, case .proxying(let exchange) = current { exchange.tunnelFromClient(held) }
        resumeReadingIfAllowed()
    }

    func closeTunnelGoingAway(ifTo endpoint: EndpointAddress?) {
        guard isTunnel, case .proxying(let exchange) = current else { return }
        exchange.closeTunnelGoingAway(ifTo: endpoint)
    }

    func writeTunnelBytes(_ buffer: ByteBuffer) {
        guard let context else { return }
        output.writeBody(buffer, allocator: allocator, through: context)
    }

    // MARK: Writing responses (from the exchange)

    func sendContinue() {
        output.writeInterim(.continue, version: requestVersion, allocator: allocator)
        flush()
    }

    func writeResponseHead(_ upstreamHead: UpstreamResponseHead) {
        guard context != nil else { return }
        if hsts == nil, keepAlive, requestVersion == .http1_1, case .lines(let lines) = upstreamHead.fields,
            upstreamHead.status.mayHaveResponseBody || !upstreamHead.hasContentLength
        {
            // Nothing to change: the upstream's lines go on as they came.
            output.writeHead(upstreamHead, lines: lines, toHEAD: requestMethod == .HEAD, allocator: allocator)
            return
        }
        var head = upstreamHead.built
        if head.version != requestVersion { head.version = requestVersion }  // setting it copies the head
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        if requestVersion.minor == 0, requestMethod != .HEAD, head.status != .noContent, head.status != .notModified,
            !head.headers.contains(name: "content-length")
        {
            // An HTTP/1.0 client can only see the end of this body by the close (a chunked
            // upstream body goes to it without the chunk framing it cannot read).
            keepAlive = false
        }
        if head.status == .switchingProtocols {
            // `Connection: upgrade` stays: the connection ends with its tunnel.
        } else if !keepAlive {
            if requestVersion.minor >= 1 { head.headers.replaceOrAdd(name: "connection", value: "close") }
        } else if requestVersion.minor == 0 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        output.writeHead(head, toHEAD: requestMethod == .HEAD, allocator: allocator)
    }

    /// Straight to the writer: wrapped in a response part, the buffer was retained and
    /// released once more.
    func writeResponseBody(_ buffer: ByteBuffer) {
        guard let context else { return }
        output.writeBody(buffer, allocator: allocator, through: context)
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        guard context != nil else { return }
        output.writeEnd(trailers, allocator: allocator)
    }

    func writeLocalResponse(_ response: LocalResponse, requestID: RequestIdentifier, requestComplete: Bool) {
        guard let context else { return }
        if response.closesConnection || (requestInProgress && !requestComplete) { keepAlive = false }
        let body = response.body(requestID: requestID, allocator: allocator)
        var head = response.head(version: requestVersion, requestID: requestID, bodyLength: body.readableBytes, close: !keepAlive)
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        output.writeHead(head, toHEAD: requestMethod == .HEAD, allocator: allocator)
        // HEAD responses and 204 carry no body (RFC 9110 §9.3.2, §15.3.5).
        if requestMethod != .HEAD, response.status != .noContent {
            output.writeBody(body, allocator: allocator, through: context)
        }
        output.writeEnd(nil, allocator: allocator)
    }

    /// Hands what was written to the socket.
    func flush() {
        guard let context else { return }
        output.flush(through: context)
    }

    // MARK: Between requests

    private func responseDone(now: NIODeadline = .now()) {
        responseInProgress = false
        guard active else { return }
        flush()
        if requestInProgress && keepAlive {
            // The response went out before the request body ended: drop the rest of the body,
            // then carry on with the next request.
            current = .discarding
            discardBudget = Self.discardLimit
            resumeReadingIfAllowed()
            return
        }
        guard keepAlive else {
            guard !closing else { return }
            closing = true
            // A local answer is written while its request is parsed.
            if isParsing { closeWhenParsed = true } else { closeAfterLastResponse() }
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
        // Each part leaves the queue before it is handled: handling it can end a response and
        // drain the queue again from inside (a local answer to a queued request).
        while !closing, let part = queued.popFirst() {
            guard handle(part) else {
                queued.prepend(part)
                break
            }
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
            headDeadline = .now() + TimeAmount(loop.current.runtime.limits.requestHeadersTimeout)
        }
    }

    private func resumeReadingIfAllowed() {
        guard readPending, !pausedByExchange, !pausedForPipelining, let context else { return }
        readPending = false
        context.read()
    }

    // MARK: From the loop

    /// The connection's deadlines, then its exchange's (every exchange in flight belongs to a
    /// connection, so the loop's sweep reaches them all from here).
    func checkTimeouts(now: NIODeadline) {
        if case .proxying(let exchange) = current { exchange.checkTimeouts(now: now) }
        if now >= lingerDeadline {
            closeNow()
        } else if now >= headDeadline, !requestInProgress, !responseInProgress, !closing {
            headDeadline = .distantFuture
            loop.metrics.add(.headerTimeouts)
            let timeout = loop.current.runtime.limits.requestHeadersTimeout
            answerWithoutRequest(
                LocalResponse(.requestHeaderTimeout, message: "the request head did not arrive within \(timeout)", closesConnection: true))
        } else if now >= idleDeadline, !requestInProgress, !responseInProgress {
            idleDeadline = .distantFuture
            closeGracefully()
        }
    }

    /// - Parameter closingIdle: close now if no request is under way; otherwise the next
    ///   request's response says `Connection: close` and the connection closes after it.
    func drain(closingIdle: Bool) {
        keepAlive = false
        if closingIdle, !requestInProgress, !responseInProgress, queued.isEmpty { closeGracefully() }
    }

    /// After the last response: at once when the client has sent all it meant to (it said the
    /// request was its last, the whole request has been read, nothing after it, and the
    /// response has gone to the kernel), as nginx does; a half-close and a wait for the
    /// client's FIN would cost a system call and a wake-up more than the request. Otherwise
    /// lingering, since the client may still be sending (``linger()``).
    private func closeAfterLastResponse() {
        guard clientEnds, !parserFailed, parser.isBetweenMessages, queued.isEmpty, bufferedOutboundBytes == 0, let context else {
            return linger()
        }
        guard client.listener.tls != nil else { return context.close(promise: nil) }
        // Over TLS, a close through swift-nio-ssl sends close_notify and then holds the
        // connection, buffers and all, until the client's close_notify or 5 s, even after the
        // socket has gone. A half-close sends close_notify and FIN without that wait; once they
        // are out, the socket closes from below swift-nio-ssl, as nginx closes after its
        // close_notify. (A client that still sent its own close_notify is answered with a
        // reset, after it has read everything.)
        guard let tls = try? context.pipeline.syncOperations.context(handlerType: NIOSSLServerHandler.self) else { return linger() }
        let sent = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: sent)
        sent.futureResult.assumeIsolated().whenComplete { _ in tls.close(promise: nil) }
    }

    private func closeGracefully() {
        guard !closing else { return }
        closing = true
        linger()
    }

    /// Closes after everything written so far has gone out, the way nginx's lingering close
    /// does: send FIN, then read and drop what the client still sends until it closes too (or
    /// `lingerTime` passes). Closing at once would make the kernel answer unread bytes with a
    /// reset, and the client could lose the response it has not read yet.
    private func linger() {
        guard let context else { return }
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
