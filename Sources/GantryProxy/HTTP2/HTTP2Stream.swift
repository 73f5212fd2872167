import Foundation
import GantryConfig
import GantryCore
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One HTTP/2 stream from a client: its request, read from the frames its connection
/// (``HTTP2ConnectionHandler``) hands it and given to a ``ProxyExchange`` in the HTTP/1.1 form
/// the exchange works on, and its response, written back as frames. No channel or pipeline of
/// its own: NIO's multiplexer made one per stream, with a codec to HTTP/1 parts in it, and
/// that cost more than the proxying. Keep-alive and pipelining do not arise.
///
/// Backpressure is HTTP/2's: the request body's window is given back only as the exchange
/// takes it (reads paused keep it shut), and the response waits (the upstream's reads pause)
/// while more than ``StreamFlow/outboundLimit`` of it is held by the client's window.
final class HTTP2Stream: Downstream {
    let loop: LoopContext
    let client: ClientSide
    let id: HTTP2StreamID
    /// The connection this stream is one of.
    private let session: HTTP2ConnectionHandler
    private let hsts: String?
    private var exchange: ProxyExchange?
    private var requestInProgress = false
    private var requestMethod = HTTPMethod.GET
    private var readsPaused = false
    private var active = true
    var isInReadBatch = false
    /// The response's HEADERS, held until its first DATA, its end (so that an answer without
    /// a body is one frame) or a flush.
    private var pendingHead: HPACKHeaders?
    /// The response's latest DATA, held until more comes, a flush, or its end, which it then
    /// carries: a body that arrives in one upstream read goes out as HEADERS and one DATA frame
    /// rather than with an empty DATA after it to say END_STREAM, a frame fewer through NIO's
    /// state machine, encoder and TLS.
    private var pendingData: ByteBuffer?
    /// A request head held until its stream shows whether a body follows, and until when.
    private var held: (head: HTTPRequestHead, until: NIODeadline)?
    /// The request body's window, and the response held by the client's.
    private var flow: StreamFlow
    var isWritable: Bool { flow.isWritable }
    /// The write of the response's end, once it is under way and the request still comes.
    private var responseEnd: EventLoopFuture<Void>?
    /// The protocol an extended CONNECT asks for (RFC 8441).
    private(set) var extendedConnect: String?
    /// The upstream switched: the stream's DATA carries the new protocol's bytes each way.
    private var isTunnel = false
    /// The response's end has been written: the stream's close that NIO reports then (at once,
    /// from inside that write, when the request had ended) is the exchange's normal end.
    private var responseWritten = false

    init(id: HTTP2StreamID, loop: LoopContext, listener: ListenerSettings, session: HTTP2ConnectionHandler, clientAddress: String, writable: Bool) {
        self.id = id
        self.loop = loop
        self.session = session
        self.client = ClientSide(listener: listener)
        self.client.address = clientAddress
        self.hsts = listener.tls?.hsts
        self.flow = StreamFlow(window: session.streamWindow, connectionWritable: writable)
        loop.connections[ObjectIdentifier(self)] = self
    }

    var bufferedOutboundBytes: Int { flow.held }

    // MARK: Reading (from the connection)

    func receive(_ payload: HTTP2Frame.FramePayload) {
        guard active else { return }
        switch payload {
        case .headers(let frame):
            if let held = held.take() {
                // Trailers end a request that was held: it had no body after all.
                start(held.head)
                if frame.endStream { endOfRequest() }
                return
            }
            if requestInProgress || exchange != nil {
                // Trailers: not forwarded (see ``ProxyExchange/requestEnd()``); they end the body.
                if frame.endStream { endOfRequest() }
                return
            }
            guard let head = requestHead(frame.headers, endStream: frame.endStream) else {
                session.reset(self, .protocolError)
                return
            }
            requestInProgress = !frame.endStream
            requestMethod = head.method
            if !frame.endStream, extendedConnect == nil, !head.headers.contains(name: "content-length"),
                !head.headers.contains(name: "transfer-encoding")
            {
                // A head that announces no body, on a stream that is not over: held until the
                // stream says whether DATA comes (as nginx reads a request's end first), so that
                // bytes it did not announce are refused before anything goes upstream, rather
                // than racing the upstream's answer. Held no longer than a head may take.
                held = (head, .now() + TimeAmount(loop.current.runtime.limits.requestHeadersTimeout))
                return
            }
            start(head)
            if frame.endStream { self.exchange?.requestEnd() }
        case .data(let frame):
            if held != nil, !frame.endStream || frame.data.readableBytes > 0 {
                session.returnToConnectionWindow(StreamFlow.size(of: frame))
                if frame.data.readableBytes > 0 { refuseUnannouncedBody() }
                return
            }
            if let held = held.take() { start(held.head) }
            let size = StreamFlow.size(of: frame)
            session.returnToConnectionWindow(size)
            flow.took(size)
            if case .byteBuffer(let buffer) = frame.data, buffer.readableBytes > 0 {
                if isTunnel { exchange?.tunnelFromClient(buffer) } else { exchange?.requestBody(buffer) }
            }
            if !readsPaused { returnBytes() }
            if frame.endStream { endOfRequest() }
        default:
            break
        }
    }

    /// DATA for a held head that announced no body: refused as the exchange refuses such bytes
    /// (``ProxyExchange/requestBody(_:)``), before anything went upstream.
    private func refuseUnannouncedBody() {
        held = nil
        let exchange = loop.takeExchange()
        self.exchange = exchange
        exchange.answerWithoutRequest(LocalResponse.badRequest("the request carries a body its head does not announce"), from: self)
    }

    private func start(_ head: HTTPRequestHead) {
        let exchange = loop.takeExchange()
        self.exchange = exchange
        exchange.begin(ClientRequestHead(head), from: self)
    }

    private func endOfRequest() {
        requestInProgress = false
        // The client's END_STREAM ends a tunnel as a close would (RFC 8441 §4).
        if isTunnel { exchange?.downstreamClosed() } else { exchange?.requestEnd() }
    }

    /// The request's head as the exchange reads it (as NIO's HTTP/2 → HTTP/1 codec made it):
    /// `Host` from `:authority`, and a body without `Content-Length` marked chunked so that it
    /// goes upstream framed. An extended CONNECT (RFC 8441) becomes the GET asking to upgrade
    /// that the HTTP/1.1 upstream hears (§5), with a WebSocket key of gantry's making, since
    /// HTTP/2 clients send none. nil when a pseudo-field is missing or repeated (NIO has checked
    /// the block otherwise).
    private func requestHead(_ block: HPACKHeaders, endStream: Bool) -> HTTPRequestHead? {
        var method: String?
        var path: String?
        var authority: String?
        var protocolName: String?
        for (name, value, _) in block where name.first == ":" {
            switch name {
            case ":method": if method != nil { return nil } else { method = value }
            case ":path": if path != nil { return nil } else { path = value }
            case ":authority": if authority != nil { return nil } else { authority = value }
            case ":protocol": protocolName = value
            default: break
            }
        }
        guard let method else { return nil }
        var headers = HTTP2Fields.fields(of: block, reservingExtra: 4)
        if let authority, !headers.contains(name: "host") { headers.add(name: "host", value: authority) }
        if method == "CONNECT", let wanted = protocolName?.lowercased() {
            extendedConnect = wanted
            headers.add(name: "connection", value: "upgrade")
            headers.add(name: "upgrade", value: wanted)
            if wanted == "websocket", !headers.contains(name: "sec-websocket-key") {
                let key = loop.drawRandom { random in (0..<16).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
                headers.add(name: "sec-websocket-key", value: Data(key).base64EncodedString())
            }
            return HTTPRequestHead(version: .http2, method: .GET, uri: path ?? "/", headers: headers)
        }
        let httpMethod = HTTPMethod(rawValue: method)
        switch httpMethod {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE:
            break
        default:
            if !headers.contains(name: "content-length") {
                headers.add(name: endStream ? "content-length" : "transfer-encoding", value: endStream ? "0" : "chunked")
            }
        }
        guard let uri = path ?? (httpMethod == .CONNECT ? authority : nil) else { return nil }
        return HTTPRequestHead(version: .http2, method: httpMethod, uri: uri, headers: headers)
    }

    func readComplete() {
        isInReadBatch = false
        exchange?.downstreamReadComplete()
    }

    // MARK: Flow control (from the exchange)

    func setReadsPaused(_ paused: Bool) {
        readsPaused = paused
        if !paused { returnBytes() }
    }

    /// Gives the stream's window back once half of it has been taken.
    private func returnBytes() {
        guard requestInProgress, let increment = flow.increment() else { return }
        session.write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: increment)))
        if !isInReadBatch { session.flush() }
    }

    func connectionWritabilityChanged(_ writable: Bool) {
        flow.connectionWritable = writable
        updateWritability()
    }

    private func updateWritability() {
        if let writable = flow.writabilityChange() { exchange?.downstreamWritabilityChanged(writable) }
    }

    // MARK: Stream lifecycle

    /// The stream closed (both sides ended, or reset), or its connection did.
    func closed() {
        guard active else { return }
        active = false
        loop.connections[ObjectIdentifier(self)] = nil
        session.streamClosed()
        if !responseWritten, let exchange = exchange.take() { exchange.downstreamClosed() }
    }

    func abort() {
        if isTunnel, let exchange {
            exchange.closeTunnelGoingAway(ifTo: nil)
            return
        }
        session.reset(self, .cancel)
    }

    func cutShort() {
        exchange = nil  // detached first: the reset must not end the exchange as the client's
        session.reset(self, .internalError)
    }

    /// The stream closes by itself once both sides have ended. A request body still arriving
    /// after the whole response is cut short with RST_STREAM(NO_ERROR), as RFC 9113 §8.1 says:
    /// the client stops sending without taking it as an error (a plain close would say CANCEL).
    func exchangeEnded(_ exchange: ProxyExchange, now: NIODeadline) {
        loop.keepForReuse(exchange)
        self.exchange = nil
        setReadsPaused(false)
        guard active else {
            session.flush()  // the end, written as the stream closed
            return
        }
        if isTunnel {
            isTunnel = false
            writeResponseEnd(nil)  // the tunnel's end is the stream's
        }
        flush()
        if requestInProgress, let responseEnd {
            // After the response's last frame has gone (NIO drops DATA still waiting for flow
            // control when the stream is reset).
            let bound = NIOLoopBound(self, eventLoop: loop.eventLoop)
            responseEnd.whenSuccess {
                let stream = bound.value
                if stream.active { stream.session.reset(stream, .noError) }
            }
        }
    }

    // MARK: Writing responses (from the exchange)

    func sendContinue() {
        session.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: [":status": "100"]))))
        flush()
    }

    /// HTTP/2 frames the body itself; connection-specific headers are not allowed.
    func writeResponseHead(_ upstreamHead: UpstreamResponseHead) {
        var code = upstreamHead.code
        var headers = upstreamHead.headers
        if code == 101, extendedConnect != nil {
            // RFC 8441 §5: a 2xx opens the tunnel; HTTP/2 has no Upgrade, and no key to accept.
            code = 200
            headers.remove(name: "sec-websocket-accept")
        }
        if let hsts { headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        pendingHead = HTTP2Fields.block(pseudo: [":status": String(code)], headers)
    }

    func writeResponseBody(_ buffer: ByteBuffer) {
        guard active else { return }
        writePendingHead(endStream: false)
        writePendingData(endStream: false)
        flow.wrote(buffer.readableBytes)
        pendingData = buffer
        updateWritability()
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        guard active else { return }
        // The end's write is awaited only when the request is still coming: then the stream is
        // reset once the response has gone. Otherwise no promise, which costs an allocation.
        let promise = requestInProgress ? loop.eventLoop.makePromise(of: Void.self) : nil
        responseEnd = promise?.futureResult
        responseWritten = true
        if let trailers {
            writePendingHead(endStream: false)
            writePendingData(endStream: false)
            session.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: HTTP2Fields.block(pseudo: [:], trailers), endStream: true))), promise: promise)
        } else if pendingHead != nil {
            writePendingHead(endStream: true, promise: promise)
        } else if pendingData != nil {
            writePendingData(endStream: true, promise: promise)
        } else {
            session.write(HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: promise)
        }
    }

    private func writePendingHead(endStream: Bool, promise: EventLoopPromise<Void>? = nil) {
        guard let headers = pendingHead.take() else { return }
        session.write(HTTP2Frame(streamID: id, payload: .headers(.init(headers: headers, endStream: endStream))), promise: promise)
    }

    /// Writes the held DATA; its bytes stop counting against the stream once NIO has sent them
    /// (the client's window may hold them back), as ``StreamFlow`` follows them. The last DATA
    /// is not followed: nothing waits on the stream's writability after it, and its bytes stop
    /// counting when the stream closes, which it does as NIO sends it.
    private func writePendingData(endStream: Bool, promise end: EventLoopPromise<Void>? = nil) {
        guard let buffer = pendingData.take() else { return }
        let frame = HTTP2Frame(streamID: id, payload: .data(.init(data: .byteBuffer(buffer), endStream: endStream)))
        guard !endStream, let confirmed = flow.writing(buffer.readableBytes) else { return session.write(frame, promise: end) }
        let promise = loop.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { [self] _ in
            flow.sent(confirmed)
            updateWritability()
        }
        session.write(frame, promise: promise)
    }

    func writeLocalResponse(_ response: LocalResponse, requestID: RequestIdentifier, requestComplete: Bool) {
        guard active else { return }
        let body = response.body(requestID: requestID, allocator: session.allocator)
        var head = response.head(version: .http2, requestID: requestID, bodyLength: body.readableBytes, close: false, statusInTrailers: true)
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        pendingHead = HTTP2Fields.block(pseudo: [":status": String(head.status.code)], head.headers)
        // A gRPC answer's status is in its trailers; HEAD responses and 204 carry no body (RFC
        // 9110 §9.3.2, §15.3.5).
        if let trailers = response.grpcTrailers {
            writeResponseEnd(trailers)
        } else if requestMethod != .HEAD, response.status != .noContent, body.readableBytes > 0 {
            writeResponseBody(body)
            writeResponseEnd(nil)
        } else {
            writeResponseEnd(nil)
        }
    }

    func flush() {
        writePendingHead(endStream: false)
        writePendingData(endStream: false)
        session.flush()
    }

    // MARK: From the loop

    func checkTimeouts(now: NIODeadline) {
        if let until = held?.until, now >= until, let held = held.take() { start(held.head) }  // goes on as a streaming request
        exchange?.checkTimeouts(now: now)
    }

    /// The connection drains as a whole, with GOAWAY (``HTTP2ConnectionHandler/drain()``); the
    /// stream finishes its request.
    func drain(closingIdle: Bool) {}
}

extension HTTP2Stream {
    /// HTTP/2 has no `Upgrade` (RFC 9113 §8.6): only an extended CONNECT's stream switches.
    var canSwitchProtocols: Bool { extendedConnect != nil }
    var requiresSwitch: Bool { extendedConnect != nil }

    func switchToTunnel() {
        isTunnel = true
    }

    func writeTunnelBytes(_ buffer: ByteBuffer) {
        writeResponseBody(buffer)
    }

    func closeTunnelGoingAway(ifTo endpoint: EndpointAddress?) {
        guard isTunnel else { return }
        exchange?.closeTunnelGoingAway(ifTo: endpoint)
    }
}
