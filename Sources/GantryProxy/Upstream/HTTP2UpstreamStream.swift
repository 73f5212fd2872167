import GantryCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One request on an HTTP/2 connection to an endpoint (``HTTP2UpstreamConnection``): the
/// exchange's head and body go out as HEADERS and DATA frames on a stream of its own, and the
/// response's frames come back to the exchange as the parts an HTTP/1.1 response is read as: a
/// head, body parts, an end with its trailers (gRPC's `grpc-status` among them).
///
/// Backpressure is HTTP/2's: the stream's window is given back only as the exchange's client
/// takes the bytes, so a slow client holds the endpoint to one window of data; and a request
/// body waits (the client's reads pause) while more than ``StreamFlow/outboundLimit`` of it is
/// held by the endpoint's window.
final class HTTP2UpstreamStream: Upstream {
    let connection: HTTP2UpstreamConnection
    var exchange: ProxyExchange?
    /// A stream carries one request; this only says the exchange gave up on the response.
    var keepAlive = true
    private(set) var id: HTTP2StreamID?
    /// The request's HEADERS, held until the first body part, the end (when they carry
    /// END_STREAM) or a flush.
    private var pendingHead: HPACKHeaders?
    /// The request body's latest DATA, held until more comes, a flush, or the end, which it
    /// then carries (a gRPC call's message and END_STREAM in one frame).
    private var pendingData: ByteBuffer?
    private var headReceived = false
    /// Set as soon as a frame with END_STREAM arrives, before the frame is handed on: whatever
    /// is written while it is handled (a WINDOW_UPDATE for the connection) makes NIO's HTTP/2
    /// handler deliver the events it holds, and the stream's close is among them, before the
    /// frame's own handling is done. The close must then find the response ended, not cut.
    private var responseEnded = false
    private var isClosed = false
    /// Why NIO reset the stream, when it said.
    private var failure: (any Error)?
    private var counted = true
    /// While the client cannot take more, response bytes are not given back to the window.
    private var readsPaused = false
    /// The response's window, and the request body held by the endpoint's.
    private var flow: StreamFlow
    var isWritable: Bool { flow.isWritable }

    init(connection: HTTP2UpstreamConnection) {
        self.connection = connection
        let writable = connection.context?.channel.isWritable ?? false
        self.flow = StreamFlow(window: HTTP2UpstreamConnection.streamWindow, connectionWritable: writable)
    }

    // MARK: The request (from the exchange)

    /// Field names go lowercased, connection-specific ones are left out (RFC 9113 §8.2.2) and
    /// `Host` becomes `:authority`. `te: trailers` always goes: gantry reads trailers, and gRPC
    /// servers want to hear it.
    func writeHead(_ head: inout UpstreamRequestHead) {
        let built = head.built
        var headers = HTTP2Fields.block(
            pseudo: [
                ":method": built.method.rawValue, ":scheme": connection.scheme,
                ":authority": built.headers.first(name: "host") ?? connection.address.description, ":path": built.uri,
            ], built.headers)
        headers.add(name: "te", value: "trailers")
        pendingHead = headers
    }

    func writeBody(_ buffer: ByteBuffer) {
        guard !isClosed else { return }
        writePendingHead(endStream: false)
        writePendingData(endStream: false)
        flow.wrote(buffer.readableBytes)
        pendingData = buffer
        updateWritability()
    }

    /// Writes the held DATA. What NIO holds for the endpoint's window is counted (as
    /// ``StreamFlow`` follows it), and past the limit the client's reads wait. Not the last,
    /// after which no read waits.
    private func writePendingData(endStream: Bool) {
        guard let buffer = pendingData.take(), let id, !isClosed else { return }
        let frame = HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(buffer), endStream: endStream)))
        guard !endStream, let confirmed = flow.writing(buffer.readableBytes), let eventLoop = connection.context?.eventLoop else {
            return connection.write(frame)
        }
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { [self] _ in
            flow.sent(confirmed)
            updateWritability()
        }
        connection.write(frame, promise: promise)
    }

    func writeEnd() {
        guard !isClosed else { return }
        if pendingHead != nil {
            writePendingHead(endStream: true)
        } else if pendingData != nil {
            writePendingData(endStream: true)
        } else if let id {
            connection.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))))
        }
    }

    func flush() {
        writePendingHead(endStream: false)
        writePendingData(endStream: false)
        connection.flush()
    }

    private func writePendingHead(endStream: Bool) {
        guard let headers = pendingHead.take(), !isClosed else { return }
        let id = connection.assignID(to: self)
        self.id = id
        connection.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: endStream))))
    }

    /// HTTP/2 has no `Upgrade` (RFC 9113 §8.6): a route to an HTTP/2 service does not switch.
    func writeTunnelBytes(_ buffer: ByteBuffer) {}

    func setReadsPaused(_ paused: Bool) {
        readsPaused = paused
        if !paused { returnBytes() }
    }

    /// Resets the stream (RST_STREAM CANCEL), if it is still open.
    func close() {
        keepAlive = false
        guard !isClosed else { return }
        if let id {
            connection.write(HTTP2Frame(streamID: id, payload: .rstStream(.cancel)))
            connection.flush()
            // NIO's close of the stream follows; the stream no longer waits for it.
        }
        closed(reason: nil)
    }

    func finished(reusable: Bool, now: NIODeadline) {
        // The stream closes by itself once both sides have ended; one whose request is still
        // going is reset, as the response needs no more of it. One whose end is still held
        // by flow control (an endpoint that answered without reading the body) would stay
        // open, counted against the connection: reset once this read is over, if still open.
        guard reusable, let eventLoop = connection.context?.eventLoop else { return close() }
        guard !isClosed else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.execute { bound.value.close() }
    }

    func timedOut() {
        connection.checkLiveness()
    }

    // MARK: The response (from the connection)

    func receive(_ payload: HTTP2Frame.FramePayload) {
        guard let current = exchange else {
            if case .data(let data) = payload { giveBack(data) }
            return
        }
        let now = NIODeadline.now()
        current.upstreamRead(at: now)
        switch payload {
        case .headers(let frame):
            guard HTTP2Fields.isValidResponse(frame.headers, trailers: headReceived) else {
                brokenResponse(current)
                return
            }
            if headReceived {
                end(current, trailers: HTTP2Fields.fields(of: frame.headers), at: now)
                return
            }
            guard let code = frame.headers.first(name: ":status").flatMap({ Int($0) }) else {
                brokenResponse(current)
                return
            }
            if code < 200 { return }  // 100 Continue and the like: gantry answered the client's own
            headReceived = true
            if frame.endStream { responseEnded = true }  // before anything is written (`responseEnded`)
            var headers = HTTP2Fields.fields(of: frame.headers)
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
            if frame.endStream { responseEnded = true }  // before anything is written (`responseEnded`)
            if case .byteBuffer(let buffer) = frame.data, buffer.readableBytes > 0 { current.upstreamReceivedBody(buffer) }
            giveBack(frame)
            if frame.endStream, exchange === current { end(current, trailers: nil, at: now) }
        case .rstStream(let code):
            failure = NIOHTTP2Errors.streamClosed(streamID: id ?? .rootStream, errorCode: code)
        default:
            break
        }
    }

    /// The bytes a DATA frame took from the windows: the connection's go back at once, the
    /// stream's once the client can take more.
    private func giveBack(_ data: HTTP2Frame.FramePayload.Data) {
        let size = StreamFlow.size(of: data)
        connection.returnToConnectionWindow(size)
        flow.took(size)
        if !readsPaused { returnBytes() }
    }

    private func returnBytes() {
        guard !isClosed, !responseEnded, let id, let increment = flow.increment() else { return }
        connection.write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment)))
        if !readsPaused { connection.flush() }
    }

    private func end(_ current: ProxyExchange, trailers: HTTPHeaders?, at now: NIODeadline) {
        responseEnded = true
        current.upstreamReceivedEnd(trailers, at: now)
    }

    /// A response without a valid `:status`: a protocol error, answered as the HTTP/1.1
    /// parser's are.
    private func brokenResponse(_ current: ProxyExchange) {
        exchange = nil
        close()
        current.upstreamClosed(error: HTTPParserError.invalidStatus)
    }

    func readComplete() {
        exchange?.upstreamReadComplete()
    }

    func connectionWritabilityChanged(_ writable: Bool) {
        flow.connectionWritable = writable
        updateWritability()
    }

    private func updateWritability() {
        if let writable = flow.writabilityChange() { exchange?.upstreamWritabilityChanged(writable) }
    }

    /// NIO reset the stream for a protocol error of the endpoint's.
    func failed(_ error: any Error) {
        failure = error
    }

    /// The stream closed: both sides ended, it was reset, or the connection went. `reason`:
    /// the error code it was reset with, if it was.
    func closed(reason: HTTP2ErrorCode?) {
        guard !isClosed else { return }
        isClosed = true
        keepAlive = false
        if counted {
            counted = false
            connection.streamClosed(id)
        }
        guard let exchange, !responseEnded else { return }
        self.exchange = nil
        if let reason, failure == nil { failure = NIOHTTP2Errors.streamClosed(streamID: id ?? .rootStream, errorCode: reason) }
        exchange.upstreamClosed(error: HTTP2StreamEnded(error: failure, wasRefused: wasRefused(reason)))
    }

    /// The endpoint did not process the stream: it refused it, it is above a GOAWAY's last
    /// stream, or it never had an id (nothing was sent).
    private func wasRefused(_ reason: HTTP2ErrorCode?) -> Bool {
        if reason == .refusedStream || (failure as? NIOHTTP2Errors.StreamClosed)?.errorCode == .refusedStream { return true }
        guard let id else { return true }
        if let last = connection.goAwayLastStream, id > last { return true }
        return false
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
