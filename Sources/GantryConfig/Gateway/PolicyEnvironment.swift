import Foundation
import GantryCore
import NIOCore
import NIOHTTP1

/// What a policy may ask of the world besides the request: the event loop it runs on, the
/// endpoints of gantry's services, HTTP/1.1 requests to other servers (token introspection,
/// key sets), a Redis server (shared rate limits), and counters. The data plane gives each
/// event loop one; tests give their own, whose answers they control.
public protocol PolicyEnvironment: Sendable {
    /// Where the futures a policy returns complete (or are carried to).
    var eventLoop: any EventLoop { get }

    /// The address of a ready endpoint of a service in gantry, or nil when it has none.
    func endpoint(ofService name: String) -> EndpointAddress?

    /// How to speak TLS to a service's endpoints, or nil when they speak plain HTTP.
    func upstreamTLS(ofService name: String) -> UpstreamTLS?

    /// One HTTP/1.1 request; the future fails when no complete answer came within `timeout`.
    func send(_ request: OutgoingRequest) -> EventLoopFuture<OutgoingResponse>

    /// One command to a Redis server; fails when no answer came within `timeout`.
    func redis(host: String, port: Int, command: [String], timeout: Duration) -> EventLoopFuture<RedisValue>

    /// Counts something a policy did that is not an answer to the client.
    func record(_ event: PolicyEvent)
}

/// A request a policy makes to another server.
public struct OutgoingRequest: Sendable {
    public var method: HTTPMethod
    public var host: String
    public var port: Int
    public var path: String
    public var headers: [(String, String)]
    public var body: Data?
    public var timeout: Duration
    /// Set for HTTPS.
    public var tls: UpstreamTLS?

    public init(
        method: HTTPMethod, host: String, port: Int, path: String, headers: [(String, String)] = [], body: Data? = nil,
        timeout: Duration = .seconds(5)
    ) {
        self.method = method
        self.host = host
        self.port = port
        self.path = path
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }

    public init(method: HTTPMethod, to target: RemoteTarget, headers: [(String, String)] = [], body: Data? = nil, timeout: Duration = .seconds(5)) {
        self.init(method: method, host: target.host, port: target.port, path: target.path, headers: headers, body: body, timeout: timeout)
        self.tls = target.tls
    }
}

extension PolicyEnvironment {
    public func upstreamTLS(ofService name: String) -> UpstreamTLS? { nil }
}

public struct OutgoingResponse: Sendable {
    public let status: Int
    public let body: Data

    public init(status: Int, body: Data) {
        self.status = status
        self.body = body
    }
}

/// Things policies count besides their answers.
public enum PolicyEvent: Sendable {
    /// A shared rate-limit store did not answer (the policy then allows or refuses, as configured).
    case rateLimitStoreFailure
    /// What a rate limit decided for one request (`gantry_rate_limit_decisions_total`).
    case rateLimitDecision(policy: String, RateLimitDecision)
}

/// A rate limit's decision: under the limit, over it (refused, or let through in shadow mode),
/// or not known because its store failed.
public enum RateLimitDecision: String, Sendable, CaseIterable {
    case allowed, limited, error
}
