import NIOCore
import NIOHTTP2

/// A connection's handler that writes its streams' frames (``HTTP2ConnectionHandler`` for
/// clients, ``HTTP2UpstreamConnection`` for endpoints): the streams have no channel of their
/// own, so their frames go out from the connection's place in its pipeline.
///
/// Its flushes wait for the end of the event loop's tick (``LoopContext/flushAtEndOfTick(_:)``):
/// the streams of one connection answer from as many upstream reads, often in the same tick, and
/// one flush then takes all their frames to the socket in one TLS record run and one write,
/// where a flush per stream cost a system call (and, over TLS, a record) for each response.
protocol HTTP2FrameWriter: AnyObject, TickFlushable {
    var context: ChannelHandlerContext? { get }
    var loopContext: LoopContext { get }
    /// A flush is due at the end of this tick.
    var flushDue: Bool { get set }
}

extension HTTP2FrameWriter {
    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(NIOAny(frame), promise: promise)
    }

    /// Flushes at the end of this tick, with whatever else the connection writes until then.
    func flush() {
        guard !flushDue, context != nil else { return }
        flushDue = true
        loopContext.flushAtEndOfTick(self)
    }

    func flushNow() {
        flushDue = false
        context?.flush()
    }
}
