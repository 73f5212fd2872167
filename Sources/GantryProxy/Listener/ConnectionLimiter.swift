import GantryConfig
import GantryCore
import NIOConcurrencyHelpers
import Synchronization

/// Edge limits on client connections, checked when a connection is accepted (never on the
/// request path): open connections in total and per client address, and new connections per
/// second per client address (a token bucket, so short bursts pass).
final class ConnectionLimiter: Sendable {
    enum Refusal: Sendable {
        case tooManyConnections, tooManyFromClient, tooFastFromClient
    }

    private let total = Atomic<Int>(0)
    private let perClient = NIOLockedValueBox<[String: Int]>([:])
    /// The limits, and the new-connection buckets made for them.
    private let current: NIOLockedValueBox<(limits: EdgeLimits, rate: RateLimiter)>

    init(limits: EdgeLimits) {
        current = NIOLockedValueBox((limits, Self.rate(for: limits)))
    }

    private static func rate(for limits: EdgeLimits) -> RateLimiter {
        RateLimiter(
            bucket: TokenBucket(
                requests: limits.newConnectionsPerSecondPerClient, per: .seconds(1), burst: 2 * limits.newConnectionsPerSecondPerClient))
    }

    var limits: EdgeLimits { current.withLockedValue { $0.limits } }

    /// New limits for connections from now on; the rate buckets start afresh when their rate changed.
    func update(_ limits: EdgeLimits) {
        current.withLockedValue { current in
            let rateChanged = current.limits.newConnectionsPerSecondPerClient != limits.newConnectionsPerSecondPerClient
            current = (limits, rateChanged ? Self.rate(for: limits) : current.rate)
        }
    }

    /// Counts a new connection in, or says why it may not stay.
    func admit(_ client: String, now: UInt64) -> Refusal? {
        let (limits, rate) = current.withLockedValue { $0 }
        if case .deny = rate.take(client, now: now) { return .tooFastFromClient }
        if total.add(1, ordering: .relaxed).newValue > limits.maxConnections {
            total.subtract(1, ordering: .relaxed)
            return .tooManyConnections
        }
        let admitted = perClient.withLockedValue { counts in
            let count = counts[client, default: 0]
            guard count < limits.maxConnectionsPerClient else { return false }
            counts[client] = count + 1
            return true
        }
        if !admitted {
            total.subtract(1, ordering: .relaxed)
            return .tooManyFromClient
        }
        return nil
    }

    /// A connection `admit` let in has closed.
    func release(_ client: String) {
        total.subtract(1, ordering: .relaxed)
        perClient.withLockedValue { counts in
            let count = counts[client, default: 1] - 1
            counts[client] = count > 0 ? count : nil
        }
    }
}
