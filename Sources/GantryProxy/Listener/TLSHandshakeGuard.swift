import NIOCore
import NIOSSL
import NIOTLS

/// Bounds the TLS handshake (a client that opens a connection and never finishes the handshake
/// holds a slot, as a slowloris does) and counts failed handshakes. Once the handshake is done
/// it builds the rest of the pipeline for the protocol ALPN chose, then steps aside: one
/// handler where NIO's `ApplicationProtocolNegotiationHandler` would be a second, added and
/// removed on every connection, with a future to wait on. Nothing needs holding while the
/// pipeline is built, as NIO's handler holds reads: it is built before the event returns.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    private unowned let loop: LoopContext
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    /// Adds the handlers for the negotiated protocol (nil: the client offered none).
    private let configure: (_ negotiated: String?, _ channel: any Channel) throws -> Void

    init(loop: LoopContext, timeout: TimeAmount, configure: @escaping (_ negotiated: String?, _ channel: any Channel) throws -> Void) {
        self.loop = loop
        self.timeout = timeout
        self.configure = configure
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
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event {
            timer?.cancel()
            timer = nil
            context.fireUserInboundEventTriggered(event)
            do {
                try configure(negotiated, context.channel)
            } catch {
                context.fireErrorCaught(error)
                context.close(promise: nil)
                return
            }
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
