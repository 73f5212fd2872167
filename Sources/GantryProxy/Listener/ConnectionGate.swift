import NIOCore

/// First in every client connection's pipeline, before TLS: the connection limits (total, per
/// client address, new per second per client), checked once at accept so that a flood of TLS
/// handshakes is refused as cheaply as a flood of plain connections. Counts the connection and
/// gives its slot back when it closes.
///
/// Once a connection is admitted the gate leaves the pipeline, so that the connection's reads
/// do not pass through it; the slot is given back from the channel's close future. NIO removes
/// only a `RemovableChannelHandler`, and fails the removal quietly otherwise.
final class ConnectionGate: ChannelInboundHandler, RemovableChannelHandler {
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
        guard decide(context) else { return }
        context.fireChannelActive()
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
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
        context.channel.closeFuture.assumeIsolated().whenComplete { [self] _ in release() }
        return true
    }

    private func release() {
        guard admitted else { return }
        admitted = false
        loop.connectionLimiter.release(clientIP)
        loop.metrics.subtract(.activeConnections)
    }
}
