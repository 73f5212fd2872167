import GantryCore
import NIOCore
import NIOHTTP1

/// A response gantry answers itself (no route, no endpoint, upstream failure, bad request):
/// a small JSON body that carries the request ID, so a user can find the log line.
struct LocalResponse {
    var status: HTTPResponseStatus
    /// Machine-readable reason, also written to the access log: `no_route`, `upstream_timeout`…
    var reason: String
    var message: String
    var extraHeaders: [(String, String)] = []
    /// The request was malformed: after this response the connection cannot be trusted.
    var closesConnection = false
    /// A body of the route's own (a `respond` policy), instead of the JSON error body.
    var fixedBody: (contentType: String, text: String)?

    static func badRequest(_ message: String) -> LocalResponse {
        LocalResponse(status: .badRequest, reason: "bad_request", message: message, closesConnection: true)
    }

    /// An exchange that failed for `detail` (the access log's): 504 for a timeout, else 502.
    static func upstreamFailure(_ detail: String) -> LocalResponse {
        let message: String
        switch detail {
        case "upstream_timeout", "stream_idle_timeout", "upstream_connect_timeout":
            return LocalResponse(status: .gatewayTimeout, reason: detail, message: "the upstream did not answer in time")
        case "upstream_connect_failure": message = "could not connect to the upstream"
        case "upstream_protocol_error": message = "the upstream sent an invalid response"
        case "upstream_reset": message = "the upstream closed the connection before responding"
        case "upstream_address_unresolvable": message = "the upstream address could not be resolved"
        default: message = "the upstream failed (\(detail))"
        }
        return LocalResponse(status: .badGateway, reason: detail, message: message)
    }

    func head(version: HTTPVersion, requestID: RequestIdentifier, bodyLength: Int, close: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.reserveCapacity(5 + extraHeaders.count)
        if status != .noContent {
            headers.add(name: "content-type", value: fixedBody?.contentType ?? "application/json")
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

    func body(requestID: RequestIdentifier, allocator: ByteBufferAllocator) -> ByteBuffer {
        if let fixedBody { return allocator.buffer(string: fixedBody.text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128 + message.utf8.count)
        bytes.append(contentsOf: "{\"status\":\(status.code),\"error\":\"".utf8)
        JSONText.appendEscaped(reason, to: &bytes)
        bytes.append(contentsOf: "\",\"message\":\"".utf8)
        JSONText.appendEscaped(message, to: &bytes)
        bytes.append(contentsOf: "\",\"requestId\":\"".utf8)
        JSONText.appendEscaped(requestID.description, to: &bytes)
        bytes.append(contentsOf: "\"}\n".utf8)
        return allocator.buffer(bytes: bytes)
    }
}
