import NIOCore
import NIOSSL
import NIOTLS

/// Bounds the TLS handshake (a client that opens a connection and never finishes the handshake
/// holds a slot, as a slowloris does) and counts failed handshakes, then steps aside.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private unowned let loop: LoopContext
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?

    init(loop: LoopContext, timeout: TimeAmount) {
        self.loop = loop
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loop = self.loop
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            loop.metrics.add(.tlsHandshakeFailures)
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            timer?.cancel()
            timer = nil
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if timer != nil {
            // Still shaking hands: a bad ClientHello, an unknown CA on the client's side, a plain
            // HTTP request to the TLS port.
            timer?.cancel()
            timer = nil
            loop.metrics.add(.tlsHandshakeFailures)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }
}
