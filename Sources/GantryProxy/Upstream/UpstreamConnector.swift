import GantryTLS
import NIOCore
import NIOPosix
import NIOSSL

/// Opens the connection an ``UpstreamHandler`` speaks on. Sockets in gantry; tests give the
/// loop one that hands out in-memory channels, so that the whole exchange runs on an embedded
/// event loop, one step at a time.
protocol UpstreamConnector {
    /// Connects `handler` to `address` on `eventLoop`; the future completes when the connection
    /// is up (for TLS, once the handshake has verified the peer), with the handler in its
    /// pipeline.
    func connect(
        _ handler: UpstreamHandler, to address: SocketAddress, tls: UpstreamSecurity?, timeout: TimeAmount, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void>
}

/// What a TLS connection to an upstream is made with.
struct UpstreamSecurity {
    let context: NIOSSLContext
    /// SNI and the name the certificate must carry; nil: the certificate must carry the peer's
    /// IP address.
    let serverName: String?
    /// What ALPN must agree on: `h2` for an HTTP/2 service; nil when HTTP/1.1 is assumed.
    var requiredProtocol: String?
}

/// A TLS handshake with an upstream failed or did not finish in time: the connection was never
/// usable, and the log says why.
struct UpstreamTLSFailure: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { TLSClientContext.explain(underlying) }

    /// An error on an open TLS connection that is the peer refusing it (an alert), rather than
    /// the connection ending.
    static func isRefusal(_ error: any Error) -> Bool {
        if let error = error as? NIOSSLError {
            if case .uncleanShutdown = error { return false }
            return true
        }
        return error is BoringSSLError
    }
}

/// TCP connections with `TCP_NODELAY`, and TLS over them when the service asks.
struct SocketConnector: UpstreamConnector {
    func connect(
        _ handler: UpstreamHandler, to address: SocketAddress, tls: UpstreamSecurity?, timeout: TimeAmount, on eventLoop: any EventLoop
    ) -> EventLoopFuture<Void> {
        let bound = NIOLoopBound(handler, eventLoop: eventLoop)
        return Self.open(to: address, tls: tls, timeout: timeout, on: eventLoop) { try $0.addHandler(bound.value) }.map { _ in }
    }

    /// A connection to `address`, up (for TLS, once the handshake has verified the peer), with
    /// what `configure` adds after TLS in its pipeline.
    static func open(
        to address: SocketAddress, tls: UpstreamSecurity?, timeout: TimeAmount, on eventLoop: any EventLoop,
        configure: @escaping @Sendable (ChannelPipeline.SynchronousOperations) throws -> Void
    ) -> EventLoopFuture<any Channel> {
        let handshake = tls.map { _ in eventLoop.makePromise(of: Void.self) }
        let connected = ClientBootstrap(group: eventLoop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls, let handshake {
                        // The connect timeout bounds the handshake too: a peer that accepts and
                        // says nothing must not hold the request until its response timeout.
                        try sync.addTLSClientHandlers(
                            context: tls.context, serverName: tls.serverName, requiredProtocol: tls.requiredProtocol, timeout: timeout
                        ).cascade(to: handshake)
                    }
                    try configure(sync)
                }
            }
            .connect(to: address)
        guard let handshake else { return connected }
        connected.whenFailure { handshake.fail($0) }
        return connected.flatMap { channel in
            handshake.futureResult.flatMapErrorThrowing { error in throw UpstreamTLSFailure(underlying: error) }.map { channel }
        }
    }
}
