import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS

/// One request on a fresh connection, timed phase by phase: connect, TLS handshake, and the
/// response (from the request sent to the response's end).
enum TraceExchange {
    struct Result {
        var connect: Duration = .zero
        var handshake: Duration = .zero
        var tlsVersion: String?
        var response: Duration = .zero
        var status = 0
        var headers = HTTPHeaders()
        var bodyBytes = 0
    }

    static func run(address: String, port: Int, serverName: String, tls: NIOSSLContext?, head: HTTPRequestHead) async throws -> Result {
        let clock = ContinuousClock()
        var result = Result()
        var started = clock.now
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: address, port: port) { channel in channel.eventLoop.makeSucceededFuture(channel) }
        defer { channel.close(promise: nil) }
        result.connect = clock.now - started

        if let tls {
            started = clock.now
            let handshake = channel.eventLoop.makePromise(of: Void.self)
            // The handler is made and read on the channel's event loop: it is not Sendable.
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverName))
                try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake))
            }.get()
            try await handshake.futureResult.get()
            result.handshake = clock.now - started
            result.tlsVersion = try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).tlsVersion.map { "\($0)" }
            }.get()
        }

        started = clock.now
        let done = channel.eventLoop.makePromise(of: (HTTPResponseHead, Int).self)
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: done))
        }.get()
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        let (response, bytes) = try await done.futureResult.get()
        result.response = clock.now - started
        result.status = Int(response.status.code)
        result.headers = response.headers
        result.bodyBytes = bytes
        return result
    }
}

/// Completes when the TLS handshake does, or fails with its error.
private final class HandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            promise.succeed(())
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }
}

/// The response head and the number of body bytes, once the response ends.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private let promise: EventLoopPromise<(HTTPResponseHead, Int)>
    private var head: HTTPResponseHead?
    private var bytes = 0

    init(promise: EventLoopPromise<(HTTPResponseHead, Int)>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let value): head = value
        case .body(let buffer): bytes += buffer.readableBytes
        case .end: if let head { promise.succeed((head, bytes)) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }
}
