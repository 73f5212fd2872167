import NIOCore
import NIOHTTP2

/// The connection under an HTTP/2 session: admitted by the connection limits like an HTTP/1.1
/// one (its streams are requests, not connections), counted, and closed on a protocol error,
/// which NIO's handler has already answered with GOAWAY.
final class HTTP2ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    private unowned let loop: LoopContext
    private var clientIP = "unknown"
    private var admitted = false

    init(loop: LoopContext) {
        self.loop = loop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        clientIP = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if loop.connectionLimiter.admit(clientIP, now: NIODeadline.now().uptimeNanoseconds) != nil {
            loop.metrics.add(.connectionsRefused)
            context.close(promise: nil)
            return
        }
        admitted = true
        loop.http2Sessions[ObjectIdentifier(self)] = context.channel
        loop.metrics.add(.downstreamConnections)
        loop.metrics.add(.http2Connections)
        loop.metrics.add(.activeConnections)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    private func release() {
        guard admitted else { return }
        admitted = false
        loop.http2Sessions[ObjectIdentifier(self)] = nil
        loop.connectionLimiter.release(clientIP)
        loop.metrics.subtract(.activeConnections)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        loop.metrics.add(.http2ProtocolErrors)
        context.close(promise: nil)
    }
}
