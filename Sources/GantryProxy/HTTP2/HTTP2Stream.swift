import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1

/// One HTTP/2 stream, behind NIO's HTTP/2 → HTTP/1 codec: one request, handed to a
/// ``ProxyExchange``, and its response as parts the codec frames. The connection, its flow
/// control and its limits are NIO's (``ListenerPipeline/configureHTTP2(_:loop:)``); keep-alive
/// and pipelining do not arise.
final class HTTP2Stream: ChannelDuplexHandler, Downstream {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let loop: LoopContext
    let client: ClientSide
    private let hsts: String?
    private var context: ChannelHandlerContext?
    private var exchange: ProxyExchange?
    private var requestInProgress = false
    private var requestMethod = HTTPMethod.GET
    private var requestVersion = HTTPVersion(major: 2, minor: 0)
    private var readsPaused = false
    private var readPending = false
    private var active = true
    private(set) var isInReadBatch = false
    private(set) var isWritable = false

    init(loop: LoopContext, listener: ListenerSettings) {
        self.loop = loop
        self.client = ClientSide(listener: listener)
        self.hsts = listener.tls?.hsts
    }

    var bufferedOutboundBytes: Int {
        (try? context?.channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0
    }

    // MARK: Stream lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isWritable = context.channel.isWritable
        if context.channel.isActive { becameActive(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        becameActive(context)
        context.fireChannelActive()
    }

    private func becameActive(_ context: ChannelHandlerContext) {
        guard loop.connections[ObjectIdentifier(self)] == nil, active else { return }
        // The stream's own address is the connection's, the client's.
        if let address = context.channel.parent?.remoteAddress ?? context.channel.remoteAddress {
            client.address = address.ipAddress ?? "unknown"
        }
        loop.connections[ObjectIdentifier(self)] = self
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
        self.context = nil
        isWritable = false
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        if let exchange = exchange.take() { exchange.downstreamClosed() }
        context.fireChannelInactive()
    }

    private func forget() {
        active = false
        loop.connections.removeValue(forKey: ObjectIdentifier(self))
    }

    // MARK: Reading

    /// NIO's codec marks a body without content-length as chunked, so the upstream request is framed.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        isInReadBatch = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard exchange == nil, !requestInProgress else { return }
            requestInProgress = true
            requestMethod = head.method
            requestVersion = head.version
            let exchange = loop.takeExchange()
            self.exchange = exchange
            exchange.begin(ClientRequestHead(head), from: self)
        case .body(let buffer):
            exchange?.requestBody(buffer)
        case .end:
            requestInProgress = false
            exchange?.requestEnd()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        isInReadBatch = false
        exchange?.downstreamReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        exchange?.downstreamWritabilityChanged(isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Flow control (from the exchange)

    func setReadsPaused(_ paused: Bool) {
        readsPaused = paused
        if !paused, readPending, let context {
            readPending = false
            context.read()
        }
    }

    func abort() {
        context?.close(promise: nil)
    }

    func cutShort() {
        exchange = nil  // detached first: the reset must not end the exchange as the client's
        context?.close(promise: nil)
    }

    /// The stream closes by itself once both sides have ended; a request body still arriving is
    /// cut short with RST_STREAM, as RFC 9113 §8.1 allows.
    func exchangeEnded(_ exchange: ProxyExchange, now: NIODeadline) {
        loop.keepForReuse(exchange)
        self.exchange = nil
        setReadsPaused(false)
        guard active else { return }
        flush()
        if requestInProgress { context?.close(promise: nil) }
    }

    // MARK: Writing responses (from the exchange)

    func sendContinue() {
        write(.head(HTTPResponseHead(version: requestVersion, status: .continue)))
        flush()
    }

    /// HTTP/2 frames the body itself; connection-specific headers are not allowed.
    func writeResponseHead(_ upstreamHead: UpstreamResponseHead) {
        var head = upstreamHead.built
        if head.version != requestVersion { head.version = requestVersion }
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        write(.head(head))
    }

    func writeResponseBody(_ buffer: ByteBuffer) {
        write(.body(.byteBuffer(buffer)))
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        write(.end(trailers))
    }

    func writeLocalResponse(_ response: LocalResponse, requestID: RequestIdentifier, requestComplete: Bool) {
        guard let context else { return }
        let body = response.body(requestID: requestID, allocator: context.channel.allocator)
        var head = response.head(version: requestVersion, requestID: requestID, bodyLength: body.readableBytes, close: false)
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        write(.head(head))
        // HEAD responses and 204 carry no body (RFC 9110 §9.3.2, §15.3.5).
        if requestMethod != .HEAD, response.status != .noContent { write(.body(.byteBuffer(body))) }
        write(.end(nil))
    }

    func flush() {
        context?.flush()
    }

    private func write(_ part: HTTPServerResponsePart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    // MARK: From the loop

    func checkTimeouts(now: NIODeadline) {
        exchange?.checkTimeouts(now: now)
    }

    /// The connection's GOAWAY is NIO's, when the listener closes it.
    func drain() {}
}
