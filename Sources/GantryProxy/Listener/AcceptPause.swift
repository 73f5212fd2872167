import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM on accept), a listener stops
/// accepting for a moment, its connections waiting in the kernel's queue, then tries again.
/// NIO's `AcceptBackoffHandler` cannot do this here: after a failed accept NIO still counts the
/// read as pending, so the handler never sees the next read it would delay, and the level-
/// triggered socket is polled again at once, in a busy loop. Turning `autoRead` off takes the
/// socket out of the poll set until it is turned on again.
final class AcceptPause: ChannelInboundHandler {
    typealias InboundIn = Channel

    static let pause = TimeAmount.milliseconds(250)
    private var paused = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused else { return }
        paused = true
        let channel = context.channel
        channel.setOption(.autoRead, value: false).whenComplete { _ in
            channel.eventLoop.scheduleTask(in: Self.pause) {
                self.paused = false
                if channel.isActive { channel.setOption(.autoRead, value: true).whenComplete { _ in } }
            }
        }
    }
}
