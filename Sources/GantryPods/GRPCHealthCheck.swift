import GantryCore
import GantryTLS
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// One `grpc.health.v1.Health/Check` call on a connection of its own, as Kubernetes' gRPC probe
/// and a load balancer's gRPC health check make it: HTTP/2 (over TLS with ALPN `h2` when `tls`
/// is set), one request, the `SERVING` status back.
struct GRPCHealthCheck: Sendable {
    let group: any EventLoopGroup

    /// The serving status the server answered (``GRPC/serving`` passes); throws when the call
    /// failed (no connection, a gRPC status other than OK, a body that is not the answer).
    func servingStatus(host: String, port: Int, service: String, timeout: Duration, tls: UpstreamTLS? = nil) async throws -> Int {
        var options = tls
        options?.http2 = true
        let context = try options.map { try TLSClientContext.shared.context(for: $0) }
        let answer = group.next().makePromise(of: Answer.self)
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanoseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context, let options {
                        let name = options.serverName(forHost: host)
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: name))
                        try channel.pipeline.syncOperations.addHandler(TLSHandshakeWatcher(promise: nil, requiredName: name))
                    }
                }.flatMap {
                    channel.configureHTTP2Pipeline(mode: .client, inboundStreamInitializer: nil)
                }.flatMap { multiplexer in
                    let call = CallHandler(
                        scheme: context == nil ? "http" : "https", authority: authority, request: GRPC.healthCheckRequest(service: service),
                        answer: answer)
                    let stream = channel.eventLoop.makePromise(of: (any Channel).self)
                    multiplexer.createStreamChannel(promise: stream) { $0.pipeline.addHandler(call) }
                    return stream.futureResult.map { _ in }
                }
            }
            .connect(host: host, port: port).get()
        defer { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { _ in answer.fail(ChannelError.eof) }
        let result = try await answer.futureResult.get()
        guard result.grpcStatus == GRPC.Status.ok.rawValue else {
            throw GRPCCallFailed(status: result.grpcStatus, message: result.grpcMessage, httpStatus: result.httpStatus)
        }
        guard let status = GRPC.servingStatus(inResponseBody: result.body) else { throw GRPCCallFailed(status: nil, message: "the answer is not a HealthCheckResponse", httpStatus: result.httpStatus) }
        return status
    }

    static func describe(_ status: Int) -> String {
        switch status {
        case 0: "UNKNOWN"
        case 1: "SERVING"
        case 2: "NOT_SERVING"
        case 3: "SERVICE_UNKNOWN"
        default: "status \(status)"
        }
    }

    struct Answer: Sendable {
        var httpStatus: Int?
        var grpcStatus: Int?
        var grpcMessage: String?
        var body: [UInt8] = []
    }

    /// Sends the request on its stream and gathers the answer: the head, the message, the
    /// trailers (or a trailers-only answer's head).
    private final class CallHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        let scheme: String
        let authority: String
        let request: [UInt8]
        let answer: EventLoopPromise<Answer>
        var gathered = Answer()

        init(scheme: String, authority: String, request: [UInt8], answer: EventLoopPromise<Answer>) {
            self.scheme = scheme
            self.authority = authority
            self.request = request
            self.answer = answer
        }

        func channelActive(context: ChannelHandlerContext) {
            let headers: HPACKHeaders = [
                ":method": "POST", ":scheme": scheme, ":authority": authority, ":path": GRPC.healthCheckPath,
                "content-type": "application/grpc", "te": "trailers", "user-agent": "gantry-health-check",
            ]
            context.write(wrapOutboundOut(.headers(.init(headers: headers))), promise: nil)
            let body = context.channel.allocator.buffer(bytes: request)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let frame):
                if gathered.httpStatus == nil {
                    gathered.httpStatus = frame.headers.first(name: ":status").flatMap { Int($0) }
                }
                if let status = frame.headers.first(name: "grpc-status") {
                    gathered.grpcStatus = Int(status)
                    gathered.grpcMessage = frame.headers.first(name: "grpc-message")
                }
                if frame.endStream { answer.succeed(gathered) }
            case .data(let frame):
                if case .byteBuffer(let buffer) = frame.data { gathered.body += buffer.readableBytesView }
                if frame.endStream { answer.succeed(gathered) }
            case .rstStream(let code):
                answer.fail(GRPCCallFailed(status: nil, message: "the stream was reset (\(code))", httpStatus: gathered.httpStatus))
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            answer.fail(ChannelError.eof)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            answer.fail(error)
            context.close(promise: nil)
        }
    }
}

/// A gRPC call that did not answer OK.
struct GRPCCallFailed: Error, CustomStringConvertible {
    let status: Int?
    let message: String?
    let httpStatus: Int?

    var description: String {
        var text = status.map { "gRPC status \($0)" } ?? "no gRPC status"
        if let message, !message.isEmpty { text += " (\(message))" }
        if let httpStatus, httpStatus != 200 { text += ", HTTP \(httpStatus)" }
        return text
    }
}
