import NIOCore
import NIOHTTP2

/// A connection's handler that writes its streams' frames (``HTTP2ConnectionHandler`` for
/// clients, ``HTTP2UpstreamConnection`` for endpoints): the streams have no channel of their
/// own, so their frames go out from the connection's place in its pipeline.
protocol HTTP2FrameWriter: AnyObject {
    var context: ChannelHandlerContext? { get }
}

extension HTTP2FrameWriter {
    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>? = nil) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(NIOAny(frame), promise: promise)
    }

    func flush() {
        context?.flush()
    }
}
