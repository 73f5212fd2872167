import GantryCore
import NIOCore
import NIOHTTP1

/// A response gantry answers itself (no route, a policy's refusal, no endpoint, an upstream
/// failure, bad input): by default a small JSON body that carries the request ID, so a user
/// can find the log line.
public struct LocalResponse: Sendable {
    public var reason: LocalReason
    public var status: HTTPResponseStatus
    public var message: String
    public var extraHeaders: [(String, String)] = []
    /// The request was malformed: after this response the connection cannot be trusted.
    public var closesConnection = false
    /// A body of the route's own (a `respond` policy), instead of the JSON error body.
    public var fixedBody: (contentType: String, text: String)?
    /// Set for a gRPC call: the answer is HTTP 200 with this status in `grpc-status` and the
    /// message in `grpc-message`, as gRPC clients read errors (they ignore HTTP bodies).
    public var grpcStatus: GRPC.Status?

    public init(
        _ reason: LocalReason, status: HTTPResponseStatus? = nil, message: String, extraHeaders: [(String, String)] = [],
        closesConnection: Bool = false
    ) {
        self.reason = reason
        self.status = status ?? reason.status
        self.message = message
        self.extraHeaders = extraHeaders
        self.closesConnection = closesConnection
    }

    /// A request that broke HTTP's rules: 400, and the connection closes.
    public static func badRequest(_ message: String) -> LocalResponse {
        LocalResponse(.malformed, message: message, closesConnection: true)
    }

    /// An exchange that failed for `reason`: 504 for a timeout, else 502.
    public static func upstreamFailure(_ reason: LocalReason) -> LocalResponse {
        LocalResponse(reason, message: reason.upstreamMessage)
    }

    /// The same answer for a gRPC client, unless it is a success of the route's own.
    public func forGRPC() -> LocalResponse {
        guard status.code >= 300 else { return self }
        var answer = self
        answer.grpcStatus = GRPC.Status(httpStatus: Int(status.code))
        answer.status = .ok
        return answer
    }

    /// `grpc-status` and `grpc-message`, for a gRPC answer's trailers.
    public var grpcTrailers: HTTPHeaders? {
        guard let grpcStatus else { return nil }
        return ["grpc-status": String(grpcStatus.rawValue), "grpc-message": GRPC.encodeMessage(message)]
    }

    /// `statusInTrailers`: for a gRPC answer, whether its status goes in trailers of its own
    /// (HTTP/2) rather than in the head (a "trailers-only" answer, the form HTTP/1.1 can carry).
    public func head(version: HTTPVersion, requestID: RequestIdentifier, bodyLength: Int, close: Bool, statusInTrailers: Bool = false)
        -> HTTPResponseHead
    {
        var headers = HTTPHeaders()
        headers.reserveCapacity(5 + extraHeaders.count)
        if let trailers = grpcTrailers {
            headers.add(name: "content-type", value: "application/grpc")
            if !statusInTrailers {
                headers.add(contentsOf: trailers)
                headers.add(name: "content-length", value: "0")
            }
        } else if status != .noContent {
            let contentType = fixedBody?.contentType ?? "application/json"
            if !contentType.isEmpty { headers.add(name: "content-type", value: contentType) }
            headers.add(name: "content-length", value: String(bodyLength))
        }
        headers.add(name: "x-request-id", value: requestID.description)
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        if close {
            headers.add(name: "connection", value: "close")
        } else if version.minor == 0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version, status: status, headers: headers)
    }

    public func body(requestID: RequestIdentifier, allocator: ByteBufferAllocator) -> ByteBuffer {
        if grpcStatus != nil { return ByteBuffer() }
        if let fixedBody { return allocator.buffer(string: fixedBody.text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + message.utf8.count)
        bytes.append(contentsOf: "{\"status\":\(status.code),\"error\":\"".utf8)
        JSONText.appendEscaped(reason.label, to: &bytes)
        bytes.append(contentsOf: "\",\"message\":\"".utf8)
        JSONText.appendEscaped(message, to: &bytes)
        bytes.append(contentsOf: "\",\"requestId\":\"".utf8)
        JSONText.appendEscaped(requestID.description, to: &bytes)
        bytes.append(contentsOf: "\"}\n".utf8)
        return allocator.buffer(bytes: bytes)
    }
}
