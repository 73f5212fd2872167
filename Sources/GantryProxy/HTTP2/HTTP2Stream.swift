import Foundation
import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1
import NIOHTTP2

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
    /// The connection this stream is one of.
    private let session: HTTP2ConnectionHandler
    /// The write of the response's end, once it is under way.
    private var responseEnd: EventLoopFuture<Void>?
    private let hsts: String?
    private var context: ChannelHandlerContext?
    private var exchange: ProxyExchange?
    private var requestInProgress = false
    private var requestMethod = HTTPMethod.GET
    private var requestVersion = HTTPVersion(major: 2, minor: 0)
    private var reads = ReadGate()
    private var active = true
    private(set) var isInReadBatch = false
    private(set) var isWritable = false
    /// The protocol an extended CONNECT asks for (RFC 8441), set by ``ExtendedConnectReader``.
    var extendedConnect: String?
    /// The upstream switched: the stream's DATA carries the new protocol's bytes each way.
    private var isTunnel = false

    init(loop: LoopContext, listener: ListenerSettings, session: HTTP2ConnectionHandler) {
        self.loop = loop
        self.session = session
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
        session.streamOpened(try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID))
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
        if loop.connections.removeValue(forKey: ObjectIdentifier(self)) != nil { session.streamClosed() }
    }

    // MARK: Reading

    /// NIO's codec marks a body without content-length as chunked, so the upstream request is framed.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        isInReadBatch = true
        switch unwrapInboundIn(data) {
        case .head(var head):
            guard exchange == nil, !requestInProgress else { return }
            requestInProgress = true
            requestMethod = head.method
            requestVersion = head.version
            if head.method == .CONNECT, let wanted = extendedConnect { head = upgradeRequest(for: head, protocol: wanted) }
            let exchange = loop.takeExchange()
            self.exchange = exchange
            exchange.begin(ClientRequestHead(head), from: self)
        case .body(let buffer):
            if isTunnel { exchange?.tunnelFromClient(buffer) } else { exchange?.requestBody(buffer) }
        case .end:
            requestInProgress = false
            // The client's END_STREAM ends a tunnel as a close would (RFC 8441 §4).
            if isTunnel { exchange?.downstreamClosed() } else { exchange?.requestEnd() }
        }
    }

    /// An extended CONNECT as the HTTP/1.1 upstream hears it (RFC 8441 §5): a GET asking to
    /// upgrade, with a WebSocket key of gantry's making, since HTTP/2 clients send none.
    private func upgradeRequest(for head: HTTPRequestHead, protocol wanted: String) -> HTTPRequestHead {
        var headers = head.headers
        headers.add(name: "connection", value: "upgrade")
        headers.add(name: "upgrade", value: wanted)
        if wanted == "websocket", !headers.contains(name: "sec-websocket-key") {
            let key = loop.drawRandom { random in (0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
            headers.add(name: "sec-websocket-key", value: Data(key).base64EncodedString())
        }
        return HTTPRequestHead(version: head.version, method: .GET, uri: head.uri, headers: headers)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        isInReadBatch = false
        exchange?.downstreamReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if reads.admitsRead() { context.read() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        exchange?.downstreamWritabilityChanged(isWritable)
        context.fireChannelWritabilityChanged()
    }

    // MARK: Flow control (from the exchange)

    func setReadsPaused(_ paused: Bool) {
        if reads.setPaused(paused) { context?.read() }
    }

    func abort() {
        if isTunnel, let exchange {
            exchange.closeTunnelGoingAway(ifTo: nil)
            return
        }
        context?.close(promise: nil)
    }

    func cutShort() {
        exchange = nil  // detached first: the reset must not end the exchange as the client's
        context?.close(promise: nil)
    }

    /// The stream closes by itself once both sides have ended. A request body still arriving
    /// after the whole response is cut short with RST_STREAM(NO_ERROR), as RFC 9113 §8.1 says:
    /// the client stops sending without taking it as an error (a plain close would say CANCEL).
    func exchangeEnded(_ exchange: ProxyExchange, now: NIODeadline) {
        loop.keepForReuse(exchange)
        self.exchange = nil
        setReadsPaused(false)
        guard active, let context else { return }
        if isTunnel {
            isTunnel = false
            write(.end(nil))  // the tunnel's end is the stream's
        }
        flush()
        if requestInProgress, let responseEnd {
            // After the response's last frame has gone (NIO drops DATA still waiting for flow
            // control when the stream is reset), if the stream is still there.
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            responseEnd.whenSuccess { bound.value.resetWithNoError() }
        }
    }

    /// RST_STREAM(NO_ERROR), written from the codec's place in the pipeline so that the frame
    /// passes below it.
    private func resetWithNoError() {
        guard let context, let codec = try? context.pipeline.syncOperations.context(handlerType: HTTP2FramePayloadToHTTP1ServerCodec.self) else {
            return
        }
        codec.writeAndFlush(NIOAny(HTTP2Frame.FramePayload.rstStream(.noError)), promise: nil)
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
        if head.status == .switchingProtocols, extendedConnect != nil {
            // RFC 8441 §5: a 2xx opens the tunnel; HTTP/2 has no Upgrade, and no key to accept.
            head.status = .ok
            for name in ["connection", "upgrade", "sec-websocket-accept"] { head.headers.remove(name: name) }
        }
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
        var head = response.head(version: requestVersion, requestID: requestID, bodyLength: body.readableBytes, close: false, grpcTrailers: true)
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        write(.head(head))
        // HEAD responses and 204 carry no body (RFC 9110 §9.3.2, §15.3.5); a gRPC answer's
        // status is in its trailers.
        if let trailers = response.grpcTrailers {
            write(.end(trailers))
            return
        }
        if requestMethod != .HEAD, response.status != .noContent { write(.body(.byteBuffer(body))) }
        write(.end(nil))
    }

    func flush() {
        context?.flush()
    }

    private func write(_ part: HTTPServerResponsePart) {
        guard let context else { return }
        // The end's write is awaited only when the request is still coming: then the stream is
        // reset once the response has gone. Otherwise no promise, which costs an allocation.
        if case .end = part, requestInProgress {
            let promise = context.eventLoop.makePromise(of: Void.self)
            responseEnd = promise.futureResult
            context.write(wrapOutboundOut(part), promise: promise)
        } else {
            context.write(wrapOutboundOut(part), promise: nil)
        }
    }

    // MARK: From the loop

    func checkTimeouts(now: NIODeadline) {
        exchange?.checkTimeouts(now: now)
    }

    /// The connection drains as a whole, with GOAWAY (``HTTP2ConnectionHandler/drain()``); the
    /// stream finishes its request.
    func drain() {}
}

extension HTTP2Stream {
    /// HTTP/2 has no `Upgrade` (RFC 9113 §8.6): only an extended CONNECT's stream switches.
    var canSwitchProtocols: Bool { extendedConnect != nil }
    var requiresSwitch: Bool { extendedConnect != nil }

    func switchToTunnel() {
        isTunnel = true
    }

    func writeTunnelBytes(_ buffer: ByteBuffer) {
        write(.body(.byteBuffer(buffer)))
    }

    func closeTunnelGoingAway(ifTo endpoint: EndpointAddress?) {
        guard isTunnel else { return }
        exchange?.closeTunnelGoingAway(ifTo: endpoint)
    }
}
