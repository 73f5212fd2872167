import NIOCore
import NIOHTTP2

/// The connection under an HTTP/2 session (admitted and counted at accept by ``ConnectionGate``):
/// tracked so that it closes after its streams when gantry shuts down, and closed on a protocol
/// error, which NIO's handler has already answered with GOAWAY, counted.
final class HTTP2ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private unowned let loop: LoopContext
    private var registered = false

    init(loop: LoopContext) {
        self.loop = loop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        registered = true
        loop.http2Sessions[ObjectIdentifier(self)] = context.channel
        loop.metrics.add(.http2Connections)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        forget()
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

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        loop.metrics.add(.http2ProtocolErrors)
        context.close(promise: nil)
    }
}
