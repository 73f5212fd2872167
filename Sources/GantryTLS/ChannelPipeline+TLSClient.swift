import NIOCore
import NIOSSL

extension ChannelPipeline.SynchronousOperations {
    /// Makes the connection a TLS client of `serverName`: swift-nio-ssl's handler, then a
    /// ``TLSHandshakeWatcher`` holding the peer to that name (and to `requiredProtocol` by ALPN)
    /// within `timeout`. The future completes when the handshake has succeeded, or fails with
    /// its own error: callers wait for it before they write, so that a write racing a failed
    /// handshake never reports a bare "I/O on closed channel" in its place.
    public func addTLSClientHandlers(
        context: NIOSSLContext, serverName: String?, requiredProtocol: String? = nil, timeout: TimeAmount? = nil
    ) throws -> EventLoopFuture<Void> {
        let handshake = eventLoop.makePromise(of: Void.self)
        try addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
        try addHandler(TLSHandshakeWatcher(promise: handshake, requiredName: serverName, requiredProtocol: requiredProtocol, timeout: timeout))
        return handshake.futureResult
    }
}
