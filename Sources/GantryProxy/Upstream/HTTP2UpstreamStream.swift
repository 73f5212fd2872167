import GantryCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One request on an HTTP/2 connection to an endpoint (``HTTP2UpstreamConnection``): the
/// exchange's head and body go out as HEADERS and DATA on a stream of NIO's multiplexer, and
/// the response's frames come back to the exchange as the parts an HTTP/1.1 response is read
/// as: a head, body parts, an end with its trailers (gRPC's `grpc-status` among them).
/// Backpressure is the stream's own: reads held back leave its flow-control window unopened.
final class HTTP2UpstreamStream: ChannelDuplexHandler, Upstream {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    let connection: HTTP2UpstreamConnection
    var exchange: ProxyExchange?
    /// A stream carries one request; this only says the exchange gave up on the response.
    var keepAlive = true
    private(set) var isWritable = false
    private var context: ChannelHandlerContext?
    /// The request's HEADERS, held until the first body part, the end (when they carry
    /// END_STREAM) or a flush.
    private var pendingHead: HPACKHeaders?
    private var headReceived = false
    private var responseEnded = false
    private var reads = ReadGate()
    /// Why NIO closed the stream, when it said.
    private var closedWith: (any Error)?
    private var counted = true

    init(connection: HTTP2UpstreamConnection) {
        self.connection = connection
    }

    /// Tells the connection, once, that this stream no longer counts against its limit.
    func letGo() {
        guard counted else { return }
        counted = false
        connection.streamClosed()
    }

    // MARK: The request (from the exchange)

    /// Field names go lowercased, connection-specific ones are left out (RFC 9113 §8.2.2) and
    /// `Host` becomes `:authority`. `te: trailers` always goes: gantry reads trailers, and gRPC
    /// servers want to hear it.
    func writeHead(_ head: inout UpstreamRequestHead) {
        let built = head.built
        var headers = HPACKHeaders()
        headers.reserveCapacity(built.headers.count + 5)
        headers.add(name: ":method", value: built.method.rawValue)
        headers.add(name: ":scheme", value: connection.scheme)
        headers.add(name: ":authority", value: built.headers.first(name: "host") ?? connection.address.description)
        headers.add(name: ":path", value: built.uri)
        for (name, value) in built.headers {
            let lowered = name.lowercased()
            if lowered == "host" || lowered == "http2-settings" || HopByHop.fields.contains(lowered) { continue }
            headers.add(name: lowered, value: value)
        }
        headers.add(name: "te", value: "trailers")
        pendingHead = headers
    }

    func writeBody(_ buffer: ByteBuffer) {
        guard let context else { return }
        writePendingHead(endStream: false)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer)))), promise: nil)
    }

    func writeEnd() {
        guard let context else { return }
        if pendingHead != nil {
            writePendingHead(endStream: true)
        } else {
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: nil)
        }
    }

    func flush() {
        guard let context else { return }
        writePendingHead(endStream: false)
        context.flush()
    }

    private func writePendingHead(endStream: Bool) {
        guard let headers = pendingHead.take(), let context else { return }
        context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: endStream))), promise: nil)
    }

    /// HTTP/2 has no `Upgrade` (RFC 9113 §8.6): a route to an HTTP/2 service does not switch.
    func writeTunnelBytes(_ buffer: ByteBuffer) {}

    func setReadsPaused(_ paused: Bool) {
        if reads.setPaused(paused) { context?.read() }
    }

    /// Resets the stream (RST_STREAM CANCEL, NIO's for a stream closed while open).
    func close() {
        keepAlive = false
        context?.close(promise: nil)
    }

    func finished(reusable: Bool, now: NIODeadline) {
        // The stream closes by itself once both sides have ended; one whose request is still
        // going is reset, as the response needs no more of it. One whose end is still held
        // by flow control (an endpoint that answered without reading the body) would stay
        // open, counted against the connection: reset once this read is over, if still open.
        guard reusable, let context else { return close() }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let stream = bound.value
            if stream.context?.channel.isActive == true { stream.close() }
        }
    }

    func timedOut() {
        connection.checkLiveness()
    }

    // MARK: The response

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        isWritable = context.channel.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        isWritable = false
        letGo()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let current = exchange else { return }
        let now = NIODeadline.now()
        current.upstreamRead(at: now)
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if headReceived {
                end(current, trailers: Self.fields(of: frame.headers), at: now)
                return
            }
            guard let code = frame.headers.first(name: ":status").flatMap({ Int($0) }) else {
                brokenResponse(current)
                return
            }
            if code < 200 { return }  // 100 Continue and the like: gantry answered the client's own
            headReceived = true
            var headers = Self.fields(of: frame.headers)
            var trailers: HTTPHeaders?
            if frame.endStream, headers.contains(name: "grpc-status") {
                // A gRPC "trailers-only" answer: all but its content type are trailers (status,
                // message, trailing metadata), and go on as trailers, which every client reads,
                // after a head that an HTTP/2 client's codec may not end the stream with.
                var kept = HTTPHeaders()
                var moved = HTTPHeaders()
                for (name, value) in headers {
                    if name == "content-type" { kept.add(name: name, value: value) } else { moved.add(name: name, value: value) }
                }
                headers = kept
                trailers = moved
            }
            headers.remove(name: "x-request-id")
            headers.add(name: "x-request-id", value: current.requestID.description)
            let head = UpstreamResponseHead(
                version: .http1_1, status: HTTPResponseStatus(statusCode: code), code: code, fields: .built(headers),
                hasContentLength: headers.contains(name: "content-length"))
            current.upstreamReceivedHead(head)
            if frame.endStream, exchange === current { end(current, trailers: trailers, at: now) }
        case .data(let frame):
            if case .byteBuffer(let buffer) = frame.data, buffer.readableBytes > 0 { current.upstreamReceivedBody(buffer) }
            if frame.endStream, exchange === current { end(current, trailers: nil, at: now) }
        default:
            break
        }
    }

    private func end(_ current: ProxyExchange, trailers: HTTPHeaders?, at now: NIODeadline) {
        responseEnded = true
        current.upstreamReceivedEnd(trailers, at: now)
    }

    /// A response without a valid `:status`: a protocol error, answered as the HTTP/1.1
    /// parser's are.
    private func brokenResponse(_ current: ProxyExchange) {
        exchange = nil
        keepAlive = false
        context?.close(promise: nil)
        current.upstreamClosed(error: HTTPParserError.invalidStatus)
    }

    /// The fields of a header block, without its pseudo-fields.
    private static func fields(of block: HPACKHeaders) -> HTTPHeaders {
        var fields = HTTPHeaders()
        fields.reserveCapacity(block.count)
        for (name, value, _) in block where !name.hasPrefix(":") { fields.add(name: name, value: value) }
        return fields
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        exchange?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        exchange?.upstreamWritabilityChanged(isWritable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closedWith = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepAlive = false
        letGo()
        if let exchange, !responseEnded {
            self.exchange = nil
            exchange.upstreamClosed(error: HTTP2StreamEnded(error: closedWith, wasRefused: wasRefused(context)))
        }
        context.fireChannelInactive()
    }

    /// The endpoint did not process the stream: it refused it, it is above a GOAWAY's last
    /// stream, or it never had an id (nothing was sent).
    private func wasRefused(_ context: ChannelHandlerContext) -> Bool {
        if (closedWith as? NIOHTTP2Errors.StreamClosed)?.errorCode == .refusedStream { return true }
        guard let id = try? context.channel.syncOptions?.getOption(HTTP2StreamChannelOptions.streamID) else { return !headReceived }
        if let last = connection.goAwayLastStream, id > last { return true }
        return false
    }

    func read(context: ChannelHandlerContext) {
        if reads.admitsRead() { context.read() }
    }
}

/// An HTTP/2 stream to an upstream ended before its response did: reset by the endpoint (or
/// refused: then never processed), or with its connection.
struct HTTP2StreamEnded: Error, CustomStringConvertible {
    let error: (any Error)?
    /// The endpoint did not process the request (REFUSED_STREAM, or a stream above a GOAWAY's
    /// last): it can be sent again, whatever its method (RFC 9113 §8.7).
    let wasRefused: Bool

    var description: String { error.map { "\($0)" } ?? "the stream ended" }
}
