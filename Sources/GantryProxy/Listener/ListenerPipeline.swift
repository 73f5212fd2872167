import GantryConfig
import GantryTLS
import NIOCore
import NIOHTTP2
import NIOSSL

/// Builds a client connection's pipeline for its listener: TLS when the listener has it, then
/// HTTP/2 (chosen by ALPN, or by the connection preface on plain listeners that accept h2c) or
/// HTTP/1.1. An HTTP/1.1 connection gets an ``HTTP1Connection``; an HTTP/2 connection an
/// ``HTTP2ConnectionHandler``, which makes an ``HTTP2Stream`` per stream. Both hand their requests to the same
/// ``ProxyExchange``, so routing, policies and the upstream exchange are one code for both.
/// The limits are the loop's current configuration's, read when the connection is accepted.
struct ListenerPipeline: Sendable {
    let listener: ListenerSettings
    let tls: TLSServerContext?

    func configure(_ channel: any Channel, loop: NIOLoopBound<LoopContext>) throws {
        let limits = loop.value.current.runtime.limits
        let sync = channel.pipeline.syncOperations
        try ConnectionGate.admit(channel, loop: loop.value)
        if let tls {
            try sync.addHandler(PlainHTTPOnTLSGuard(loop: loop.value))
            try sync.addHandler(NIOSSLServerHandler(context: tls.sslContext))
            let pipeline = self
            // ALPN: "h2" → HTTP/2 (offered only on listeners with it), "http/1.1" or nothing → HTTP/1.1.
            try sync.addHandler(
                TLSHandshakeGuard(loop: loop.value, timeout: TimeAmount(limits.requestHeadersTimeout)) { negotiated, channel in
                    if negotiated == "h2", pipeline.listener.http2 {
                        try pipeline.configureHTTP2(channel, loop: loop)
                    } else {
                        try pipeline.configureHTTP1(channel, loop: loop)
                    }
                })
        } else if listener.http2 {
            let pipeline = self
            try sync.addHandler(
                HTTP2PrefaceSniffer { isHTTP2, channel in
                    if isHTTP2 { try pipeline.configureHTTP2(channel, loop: loop) } else { try pipeline.configureHTTP1(channel, loop: loop) }
                })
        } else {
            try configureHTTP1(channel, loop: loop)
        }
    }

    func configureHTTP1(_ channel: any Channel, loop: NIOLoopBound<LoopContext>) throws {
        // The handler parses requests and writes responses itself (``HTTPRequestParser``,
        // ``HTTP1MessageWriter``).
        try channel.pipeline.syncOperations.addHandler(HTTP1Connection(loop: loop.value, listener: listener))
    }

    /// HTTP/2 with the edge limits Envoy recommends for untrusted clients: 100 concurrent
    /// streams, 64 KiB stream and 1 MiB connection windows, the head size limit as the header
    /// list limit. NIO's handler closes connections that reset streams too fast (CVE-2023-44487)
    /// or flood CONTINUATION frames; ``HTTP2ConnectionHandler`` counts them.
    func configureHTTP2(_ channel: any Channel, loop: NIOLoopBound<LoopContext>) throws {
        let limits = loop.value.current.runtime.limits
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: limits.http2MaxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: limits.maxHeadSize),
            HTTP2Setting(parameter: .initialWindowSize, value: limits.http2StreamWindow),
            // RFC 8441: WebSockets over a stream (extended CONNECT), carried to HTTP/1.1 upstreams.
            HTTP2Setting(parameter: .enableConnectProtocol, value: 1),
        ]
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(HTTP2WriteCoalescer())  // over TLS and in the clear alike
        // Without a multiplexer: the frames go to ``HTTP2ConnectionHandler``, which keeps the
        // streams itself.
        try sync.addHandler(NIOHTTP2Handler(mode: .server, frameDelegate: nil, connectionConfiguration: connection))
        try sync.addHandler(
            HTTP2ConnectionHandler(
                loop: loop.value, listener: listener, streamWindow: limits.http2StreamWindow, connectionWindow: limits.http2ConnectionWindow))
    }
}
