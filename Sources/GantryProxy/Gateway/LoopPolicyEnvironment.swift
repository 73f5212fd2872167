import Foundation
import GantryConfig
import GantryCore
import NIOCore

/// What policies may ask of the world from one event loop: the loop's current endpoints,
/// requests to other servers, the loop's Redis connections and counters. Used only on its loop.
final class LoopPolicyEnvironment: PolicyEnvironment, @unchecked Sendable {
    /// Unowned: the loop owns this environment, and outlives every request that uses it.
    private unowned let loop: LoopContext
    let eventLoop: any EventLoop

    init(loop: LoopContext) {
        self.loop = loop
        self.eventLoop = loop.eventLoop
    }

    func endpoint(ofService name: String) -> EndpointAddress? {
        eventLoop.preconditionInEventLoop()
        return loop.current.cluster(named: name)?.endpoints.endpoints.randomElement()?.address
    }

    func upstreamTLS(ofService name: String) -> UpstreamTLS? {
        loop.current.cluster(named: name)?.settings.tls
    }

    func send(_ request: OutgoingRequest) -> EventLoopFuture<OutgoingResponse> {
        request.send(on: eventLoop)
    }

    func redis(host: String, port: Int, command: [String], timeout: Duration) -> EventLoopFuture<RedisValue> {
        eventLoop.preconditionInEventLoop()
        return loop.redis(host: host, port: port).send(command, timeout: TimeAmount(timeout))
    }

    func record(_ event: PolicyEvent) {
        eventLoop.preconditionInEventLoop()
        switch event {
        case .rateLimitStoreFailure: loop.metrics.add(.rateLimitStoreFailures)
        case .rateLimitDecision(let policy, let decision): loop.requestMetrics.recordRateLimit(policy: policy, decision: decision)
        }
    }
}
