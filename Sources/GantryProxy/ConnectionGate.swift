import NIOCore

/// First in every client connection's pipeline, before TLS: the connection limits (total, per
/// client address, new per second per client), checked once at accept so that a flood of TLS
/// handshakes is refused as cheaply as a flood of plain connections. Counts the connection and
/// gives its slot back when it closes.
final class ConnectionGate: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private unowned let loop: LoopContext
    private var clientIP = "unknown"
    private var admitted = false
    private var decided = false

    init(loop: LoopContext) {
        self.loop = loop
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { decide(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        // A refused connection is closed here and never reported active to the handlers after.
        if decide(context) { context.fireChannelActive() }
    }

    /// Returns whether the connection may stay.
    @discardableResult
    private func decide(_ context: ChannelHandlerContext) -> Bool {
        guard !decided else { return admitted }
        decided = true
        clientIP = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if loop.connectionLimiter.admit(clientIP, now: NIODeadline.now().uptimeNanoseconds) != nil {
            loop.metrics.add(.connectionsRefused)
            context.close(promise: nil)
            return false
        }
        admitted = true
        loop.metrics.add(.downstreamConnections)
        loop.metrics.add(.activeConnections)
        return true
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        guard admitted else { return }
        admitted = false
        loop.connectionLimiter.release(clientIP)
        loop.metrics.subtract(.activeConnections)
    }
}
