import NIOCore
import NIOPosix

/// Opens the connection an ``UpstreamHandler`` speaks on. Sockets in gantry; tests give the
/// loop one that hands out in-memory channels, so that the whole exchange runs on an embedded
/// event loop, one step at a time.
protocol UpstreamConnector {
    /// Connects `handler` to `address` on `eventLoop`; the future completes when the connection
    /// is up, with the handler in its pipeline.
    func connect(_ handler: UpstreamHandler, to address: SocketAddress, timeout: TimeAmount, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
}

/// TCP connections with `TCP_NODELAY`.
struct SocketConnector: UpstreamConnector {
    func connect(_ handler: UpstreamHandler, to address: SocketAddress, timeout: TimeAmount, on eventLoop: any EventLoop)
        -> EventLoopFuture<Void>
    {
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(to: address)
            .map { _ in }
    }
}
