import GantryConfig
import NIOCore
import NIOHTTP2

/// An HTTP/2 connection from a client (admitted and counted at accept by ``ConnectionGate``),
/// after NIO's `NIOHTTP2Handler`, which frames, validates, enforces the limits and flow
/// control's accounting. This handler takes the frames and is the rest:
///
/// - each stream is an ``HTTP2Stream``, made on its first HEADERS and handed its frames, with
///   no channel of its own; the windows its request body is read with are given back as the
///   exchange takes the bytes;
/// - a stream error resets that stream only (RFC 9113 §5.4.2): NIO has sent RST_STREAM, and
///   the connection and its other streams go on;
/// - a connection error ends the connection with a GOAWAY naming the last stream gantry
///   processed (§5.4.1, §6.8), after NIO's, which names 2^31−1: a client retries the streams
///   above it knowing they were never seen;
/// - a drain (shutdown, or the listener removed) is the two-step GOAWAY of §6.8: GOAWAY
///   2^31−1 with a PING, then, when the PING comes back (every stream the client opened before
///   it has arrived), GOAWAY with the real last stream; the streams up to it finish, NIO refuses
///   those above, and the connection closes when the last one ends.
final class HTTP2ConnectionHandler: ChannelInboundHandler, HTTP2FrameWriter {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private enum Drain {
        case serving
        /// The first GOAWAY and the PING are out; the PING's answer is awaited.
        case announced(ping: HTTP2PingData)
        /// The final GOAWAY is out: the connection closes once its streams have.
        case final
    }

    private unowned let loop: LoopContext
    private let settings: ListenerSettings
    var listener: String { settings.name }
    /// The window each stream's request body is read with (the listener's configuration).
    let streamWindow: Int
    private let connectionWindow: Int
    private(set) var context: ChannelHandlerContext?
    private(set) var allocator = ByteBufferAllocator()
    var loopContext: LoopContext { loop }
    var flushDue = false
    private var registered = false
    private var drainState = Drain.serving
    /// The highest stream accepted.
    private var lastProcessed = HTTP2StreamID(0)
    private var streams: [HTTP2StreamID: HTTP2Stream] = [:]
    private var openStreams = 0
    /// Streams given frames in the current read, told when it ends.
    private var readBatch: [HTTP2Stream] = []
    private var clientAddress = "unknown"
    private var settingsReceived = false
    /// Request body bytes taken off the connection's window and not yet given back.
    private var connectionBytesToReturn = 0
    /// A connection error ended the connection.
    private var failed = false
    /// How long a drain waits for its PING's answer before sending the final GOAWAY anyway.
    static let pingTimeout = TimeAmount.seconds(2)

    init(loop: LoopContext, listener: ListenerSettings, streamWindow: Int, connectionWindow: Int) {
        self.loop = loop
        self.settings = listener
        self.streamWindow = streamWindow
        self.connectionWindow = connectionWindow
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        clientAddress = context.channel.remoteAddress?.ipAddress ?? "unknown"
        registered = true
        loop.http2Sessions[ObjectIdentifier(self)] = self
        loop.metrics.add(.http2Connections)
        if loop.draining { drain() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        forget()
        for stream in Array(streams.values) { stream.closed() }
        streams.removeAll()
        context.fireChannelInactive()
    }

    private func forget() {
        guard registered else { return }
        registered = false
        loop.http2Sessions[ObjectIdentifier(self)] = nil
    }

    // MARK: Frames

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.streamID == .rootStream else {
            let stream: HTTP2Stream
            if let known = streams[frame.streamID] {
                stream = known
            } else if case .headers = frame.payload {
                // A new stream (NIO has checked its id and the concurrency limit): accepted,
                // so a GOAWAY must not tell the client it is safe to retry it.
                stream = HTTP2Stream(
                    id: frame.streamID, loop: loop, listener: settings, session: self, clientAddress: clientAddress,
                    writable: context.channel.isWritable)
                streams[frame.streamID] = stream
                openStreams += 1
                if frame.streamID > lastProcessed { lastProcessed = frame.streamID }
            } else {
                if case .data(let data) = frame.payload {
                    // For a stream already closed here: its bytes still count against the
                    // connection's window.
                    returnToConnectionWindow(StreamFlow.size(of: data))
                }
                return
            }
            if !stream.isInReadBatch {
                stream.isInReadBatch = true
                readBatch.append(stream)
            }
            stream.receive(frame.payload)
            return
        }
        switch frame.payload {
        case .settings(.settings):
            if !settingsReceived {
                settingsReceived = true
                // The connection's window beyond HTTP/2's initial 64 KiB (NIO's preface has
                // gone by now: nothing may precede it).
                if connectionWindow > 65_535 {
                    write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionWindow - 65_535)))
                    context.flush()
                }
            }
        case .ping(let data, ack: true):
            if case .announced(let sent) = drainState, data == sent { sendFinalGoAway() }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let batch = readBatch
        readBatch.removeAll(keepingCapacity: true)
        for stream in batch { stream.readComplete() }
        flush()  // window updates given back during the read, and answers made in it
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent, let stream = streams.removeValue(forKey: closed.streamID) {
            stream.closed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        for stream in streams.values { stream.connectionWritabilityChanged(writable) }
        context.fireChannelWritabilityChanged()
    }

    // MARK: From the streams

    /// Resets a stream (`code`): NIO's close of it follows; the stream ends here at once.
    func reset(_ stream: HTTP2Stream, _ code: HTTP2ErrorCode) {
        guard streams.removeValue(forKey: stream.id) != nil else { return }
        write(HTTP2Frame(streamID: stream.id, payload: .rstStream(code)))
        flush()
        stream.closed()
    }

    /// A stream has ended (it says so once).
    func streamClosed() {
        openStreams -= 1
        closeIfDrained()
    }

    /// Request body bytes a stream has taken: the connection's window is given back once half
    /// of it is used, whatever the streams do with theirs (each stream's own window is what
    /// holds a slow one back).
    func returnToConnectionWindow(_ bytes: Int) {
        connectionBytesToReturn += bytes
        guard connectionBytesToReturn >= connectionWindow / 2 else { return }
        write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionBytesToReturn)))
        connectionBytesToReturn = 0
    }

    // MARK: Errors

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if Self.isStreamError(error) {
            // NIO has reset the stream; its close follows.
            loop.metrics.add(.http2StreamErrors)
            return
        }
        // A frame for a stream that has just closed (a reset crossing the client's end).
        if error is NIOHTTP2Errors.NoSuchStream { return }
        // The socket failed: NIO closes the channel itself (and a close through TLS from here
        // would hold the connection until its close_notify timeout; ``HTTP1Connection``).
        if error is IOError { return }
        // Once: a GOAWAY NIO refuses comes back here as an error of its own.
        guard !failed else { return }
        failed = true
        loop.metrics.add(.http2ProtocolErrors)
        // NIO has sent GOAWAY(2^31−1); a second may only lower the stream id (§6.8). When NIO
        // named stream 0 (a flood), this one is refused by its state machine, and that is right.
        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastProcessed, errorCode: .protocolError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        context.close(promise: nil)
    }

    /// Errors NIO raises for one stream's frames (RFC 9113 §8.1.1: a malformed request is a
    /// stream error), after resetting that stream. Everything else NIO reports on the
    /// connection is a connection error, already answered with GOAWAY.
    static func isStreamError(_ error: any Error) -> Bool {
        switch error {
        case is NIOHTTP2Errors.InvalidHTTP2HeaderFieldName, is NIOHTTP2Errors.InvalidHTTP2HeaderFieldValue,
            is NIOHTTP2Errors.ForbiddenHeaderField, is NIOHTTP2Errors.PseudoHeaderAfterRegularHeader,
            is NIOHTTP2Errors.MissingPseudoHeader, is NIOHTTP2Errors.DuplicatePseudoHeader, is NIOHTTP2Errors.UnknownPseudoHeader,
            is NIOHTTP2Errors.UnsupportedPseudoHeader, is NIOHTTP2Errors.InvalidPseudoHeaderValue, is NIOHTTP2Errors.EmptyPathHeader,
            is NIOHTTP2Errors.InvalidPseudoHeaders, is NIOHTTP2Errors.ContentLengthViolated, is NIOHTTP2Errors.ContentLengthHeadersMismatch,
            is NIOHTTP2Errors.TrailersWithoutEndStream, is NIOHTTP2Errors.StreamError:
            return true
        default:
            return false
        }
    }

    // MARK: Draining

    /// The first step of a graceful close: new streams are still taken until the PING's
    /// answer shows the client has seen the GOAWAY.
    func drain() {
        guard case .serving = drainState, let context else { return }
        let ping = HTTP2PingData(withInteger: UInt64.random(in: 1...UInt64.max))
        drainState = .announced(ping: ping)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(ping, ack: false))), promise: nil)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: Self.pingTimeout) { bound.value.sendFinalGoAway() }
    }

    private func sendFinalGoAway() {
        guard case .announced = drainState, let context else { return }
        drainState = .final
        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: lastProcessed, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        closeIfDrained()
    }

    private func closeIfDrained() {
        guard case .final = drainState, openStreams == 0, let context else { return }
        // A stream closes as its last frame is written, before NIO's handler has flushed it:
        // closing in the same tick would drop those bytes (NIO's own connection manager waits
        // a tick for the same reason).
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            guard let context = bound.value.context else { return }  // removed meanwhile: closed already
            context.flush()
            context.close(promise: nil)
        }
    }

    /// Closes at once, at the end of a drain's grace period.
    func close() {
        context?.close(promise: nil)
    }
}
