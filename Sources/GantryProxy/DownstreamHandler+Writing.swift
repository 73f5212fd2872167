import GantryCore
import NIOCore
import NIOHTTP1

/// Writing a connection's responses: proxied ones part by part as the exchange relays them, and
/// gantry's own. HTTP/1.1 responses become bytes here (``HTTP1MessageWriter``), gathered until
/// the flush; an HTTP/2 stream's go to NIO's HTTP/2 codec as parts.
extension DownstreamHandler {
    /// Bytes of an unwanted request body read and dropped before closing instead.
    static let discardLimit = 1 << 20
    /// How long a closing connection waits for the client to close its side.
    static let lingerTime = TimeAmount.seconds(2)

    func sendContinue() {
        send(.head(HTTPResponseHead(version: requestVersion, status: .continue)))
        flush()
    }

    func writeResponseHead(_ upstreamHead: UpstreamResponseHead) {
        if !multiplexed, hsts == nil, keepAlive, requestVersion == .http1_1, case .lines(let lines) = upstreamHead.fields,
            upstreamHead.status.mayHaveResponseBody || !upstreamHead.hasContentLength, context != nil
        {
            // Nothing to change: the upstream's lines go on as they came.
            output.writeHead(upstreamHead, lines: lines, toHEAD: requestMethod == .HEAD, allocator: allocator)
            return
        }
        var head = upstreamHead.built
        if head.version != requestVersion { head.version = requestVersion }  // setting it copies the head
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        if multiplexed {
            // HTTP/2 frames the body itself; connection-specific headers are not allowed.
            send(.head(head))
            return
        }
        if requestVersion.minor == 0, requestMethod != .HEAD, head.status != .noContent, head.status != .notModified,
            !head.headers.contains(name: "content-length")
        {
            // An HTTP/1.0 client can only see the end of this body by the close (a chunked
            // upstream body goes to it without the chunk framing it cannot read).
            keepAlive = false
        }
        if !keepAlive {
            if requestVersion.minor >= 1 { head.headers.replaceOrAdd(name: "connection", value: "close") }
        } else if requestVersion.minor == 0 {
            head.headers.replaceOrAdd(name: "connection", value: "keep-alive")
        }
        send(.head(head))
    }

    /// Straight to the writer on HTTP/1: wrapped in a response part, the buffer was retained
    /// and released once more.
    func writeResponseBody(_ buffer: ByteBuffer) {
        guard let context, !multiplexed else { return send(.body(.byteBuffer(buffer))) }
        output.writeBody(buffer, allocator: allocator, through: context)
    }

    func writeResponseEnd(_ trailers: HTTPHeaders?) {
        guard context != nil, !multiplexed else { return send(.end(trailers)) }
        output.writeEnd(trailers, allocator: allocator)
    }

    /// Hands what was written to the socket.
    func flush() {
        guard let context else { return }
        output.flush(through: context)
    }

    /// One response part: as HTTP/2 frames' input on a stream, else as HTTP/1.1 bytes that
    /// gather until the next flush.
    private func send(_ part: HTTPServerResponsePart) {
        guard let context else { return }
        if multiplexed {
            context.write(wrapOutboundOut(part), promise: nil)
            return
        }
        switch part {
        case .head(let head) where head.status.code < 200:
            output.writeInterim(head.status, version: head.version, allocator: allocator)
        case .head(let head):
            output.writeHead(head, toHEAD: requestMethod == .HEAD, allocator: allocator)
        case .body(let data):
            guard case .byteBuffer(let buffer) = data else { preconditionFailure("gantry never sends file regions") }
            output.writeBody(buffer, allocator: allocator, through: context)
        case .end(let trailers):
            output.writeEnd(trailers, allocator: allocator)
        }
    }

    func writeLocalResponse(_ response: LocalResponse, requestID: RequestIdentifier, requestComplete: Bool) {
        guard context != nil else { return }
        if requestInProgress && requestHasBody && !requestComplete { keepAlive = false }
        let body = response.body(requestID: requestID, allocator: allocator)
        var head = response.head(version: requestVersion, requestID: requestID, bodyLength: body.readableBytes, close: !keepAlive && !multiplexed)
        if let hsts { head.headers.replaceOrAdd(name: "strict-transport-security", value: hsts) }
        send(.head(head))
        // HEAD responses and 204 carry no body (RFC 9110 §9.3.2, §15.3.5).
        if requestMethod != .HEAD, response.status != .noContent {
            send(.body(.byteBuffer(body)))
        }
        send(.end(nil))
        if case .proxying = current {
            return  // the exchange reports its end through exchangeFinished
        }
        responseDone()
    }
}
