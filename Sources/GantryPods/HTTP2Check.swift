import GantryCore
import GantryTLS
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// One request on an HTTP/2 connection of its own, for the checks of services whose endpoints
/// speak HTTP/2: a `grpc.health.v1.Health/Check` call, as Kubernetes' gRPC probe and a load
/// balancer's gRPC health check make it, or a GET of a health-check path. Over TLS with ALPN
/// `h2` when `tls` is set. The whole exchange is bounded by `timeout`, on the connection's
/// loop: a server that accepts and never answers fails the check, whatever awaits it.
struct HTTP2Check: Sendable {
    let group: any EventLoopGroup

    /// The serving status a gRPC health service answered (``GRPC/serving`` passes); throws
    /// when the call failed (no connection, a gRPC status other than OK, a body that is not
    /// the answer).
    func grpcServingStatus(host: String, port: Int, service: String, timeout: Duration, tls: UpstreamTLS? = nil) async throws -> Int {
        let headers: HPACKHeaders = ["content-type": "application/grpc", "te": "trailers"]
        let result = try await request(
            host: host, port: port, method: "POST", path: GRPC.healthCheckPath, headers: headers, body: GRPC.healthCheckRequest(service: service),
            timeout: timeout, tls: tls)
        guard result.grpcStatus == GRPC.Status.ok.rawValue else {
            throw GRPCCallFailed(status: result.grpcStatus, message: result.grpcMessage, httpStatus: result.httpStatus)
        }
        guard let status = GRPC.servingStatus(inResponseBody: result.body) else {
            throw GRPCCallFailed(status: nil, message: "the answer is not a HealthCheckResponse", httpStatus: result.httpStatus)
        }
        return status
    }

    /// The status of a GET of `path`; 0 when the answer had none.
    func status(host: String, port: Int, path: String, timeout: Duration, tls: UpstreamTLS? = nil) async throws -> Int {
        try await request(host: host, port: port, method: "GET", path: path, headers: [:], body: nil, timeout: timeout, tls: tls).httpStatus ?? 0
    }

    /// Sends one request and gathers its answer: the head, the body, the trailers (or a
    /// trailers-only answer's head).
    func request(
        host: String, port: Int, method: String, path: String, headers: HPACKHeaders, body: [UInt8]?, timeout: Duration, tls: UpstreamTLS?
    ) async throws -> Answer {
        var options = tls
        options?.http2 = true
        let context = try options.map { try TLSClientContext.shared.context(for: $0) }
        let answer = group.next().makePromise(of: Answer.self)
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var head: HPACKHeaders = [":method": method, ":scheme": context == nil ? "http" : "https", ":authority": authority, ":path": path]
        head.add(contentsOf: headers)
        head.add(name: "user-agent", value: "gantry-health-check")
        let call = CallHandler(head: head, body: body, answer: answer)
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(timeout.nanoseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context, let options {
                        // The handshake's own failure is the answer's, before the close that
                        // follows it could fail the answer with a bare end of file.
                        try channel.pipeline.syncOperations.addTLSClientHandlers(
                            context: context, serverName: options.serverName(forHost: host), requiredProtocol: "h2"
                        ).whenFailure { answer.fail($0) }
                    }
                }.flatMap {
                    channel.configureHTTP2Pipeline(mode: .client, inboundStreamInitializer: nil)
                }.flatMap { multiplexer in
                    let stream = channel.eventLoop.makePromise(of: (any Channel).self)
                    multiplexer.createStreamChannel(promise: stream) { $0.pipeline.addHandler(call) }
                    return stream.futureResult.map { _ in }
                }
            }
            .connect(host: host, port: port).get()
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) {
            answer.fail(ChannelError.connectTimeout(.nanoseconds(timeout.nanoseconds)))
        }
        channel.closeFuture.whenComplete { _ in answer.fail(ChannelError.eof) }
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        return try await answer.futureResult.get()
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

    /// Sends the request on its stream and gathers the answer.
    private final class CallHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        let head: HPACKHeaders
        let body: [UInt8]?
        let answer: EventLoopPromise<Answer>
        var gathered = Answer()

        init(head: HPACKHeaders, body: [UInt8]?, answer: EventLoopPromise<Answer>) {
            self.head = head
            self.body = body
            self.answer = answer
        }

        func channelActive(context: ChannelHandlerContext) {
            context.write(wrapOutboundOut(.headers(.init(headers: head, endStream: body == nil))), promise: nil)
            if let body {
                let buffer = context.channel.allocator.buffer(bytes: body)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(buffer), endStream: true))), promise: nil)
            }
            context.flush()
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
