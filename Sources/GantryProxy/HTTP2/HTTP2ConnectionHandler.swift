import NIOCore
import NIOHTTP2

/// The connection under an HTTP/2 session (admitted and counted at accept by ``ConnectionGate``),
/// after NIO's `NIOHTTP2Handler`, which frames, validates and multiplexes. What RFC 9113 asks of
/// a server beyond that is here:
///
/// - a stream error resets that stream only (§5.4.2): NIO has sent RST_STREAM, and the
///   connection and its other streams go on;
/// - a connection error ends the connection with a GOAWAY naming the last stream gantry
///   processed (§5.4.1, §6.8), after NIO's, which names 2^31−1: a client retries the streams
///   above it knowing they were never seen;
/// - a drain (shutdown, or the listener removed) is the two-step GOAWAY of §6.8: GOAWAY
///   2^31−1 with a PING, then, when the PING comes back (every stream the client opened before
///   it has arrived), GOAWAY with the real last stream; the streams up to it finish, NIO refuses
///   those above, and the connection closes when the last one ends.
final class HTTP2ConnectionHandler: ChannelInboundHandler {
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
    let listener: String
    private var context: ChannelHandlerContext?
    private var registered = false
    private var drainState = Drain.serving
    /// The highest stream accepted.
    private var lastProcessed = HTTP2StreamID(0)
    private var openStreams = 0
    /// A connection error ended the connection.
    private var failed = false
    /// How long a drain waits for its PING's answer before sending the final GOAWAY anyway.
    static let pingTimeout = TimeAmount.seconds(2)

    init(loop: LoopContext, listener: String) {
        self.loop = loop
        self.listener = listener
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
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
        context.fireChannelInactive()
    }

    private func forget() {
        guard registered else { return }
        registered = false
        loop.http2Sessions[ObjectIdentifier(self)] = nil
    }

    // MARK: Streams (from ``HTTP2Stream``)

    /// A stream was accepted: it will be processed, so a GOAWAY must not tell the client it is
    /// safe to retry it.
    func streamOpened(_ id: HTTP2StreamID?) {
        openStreams += 1
        if let id, id > lastProcessed { lastProcessed = id }
    }

    func streamClosed() {
        openStreams -= 1
        closeIfDrained()
    }

    // MARK: Errors

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if Self.isStreamError(error) {
            loop.metrics.add(.http2StreamErrors)
            return
        }
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .ping(let data, ack: true) = unwrapInboundIn(data).payload, case .announced(let sent) = drainState, data == sent {
            sendFinalGoAway()
        }
        context.fireChannelRead(data)
    }

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
