import GantryConfig
import GantryCore
import Synchronization

/// What gateway policies share across event loops: the rate limiters, and the requests to
/// fetch a JWT key set again when a token names a key gantry does not know yet.
final class GatewayState: Sendable {
    /// By policy index; nil for policies that are not rate limits.
    let limiters: [RateLimiter?]
    let introspections = IntrospectionCache()
    private let refetches: AsyncStream<Int>.Continuation
    let refetchRequests: AsyncStream<Int>

    init(policies: [GatewayPolicy]) {
        limiters = policies.map { policy in
            if case .rateLimit(let limit) = policy { RateLimiter(bucket: limit.bucket) } else { nil }
        }
        (refetchRequests, refetches) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(64))
    }

    /// Asks the key fetcher of a jwt policy to fetch again (it decides whether it may yet).
    func requestRefetch(policy index: Int) {
        refetches.yield(index)
    }
}

/// Answers of token introspection endpoints, by policy and token digest, kept for the token's
/// remaining life (bounded by the policy's `cacheTTL`); inactive answers for a few seconds, to
/// blunt token-guessing floods. Bounded in size.
final class IntrospectionCache: Sendable {
    struct Entry: Sendable {
        /// nil: the token is not active.
        let claims: [String: JSONValue]?
        /// Monotonic nanoseconds.
        let expires: UInt64
    }

    private let entries = Mutex<[String: Entry]>([:])
    static let capacity = 100_000

    func lookup(_ key: String, now: UInt64) -> Entry? {
        entries.withLock { entries in
            guard let entry = entries[key] else { return nil }
            if entry.expires <= now {
                entries[key] = nil
                return nil
            }
            return entry
        }
    }

    func store(_ key: String, _ entry: Entry, now: UInt64) {
        entries.withLock { entries in
            if entries.count >= Self.capacity {
                entries = entries.filter { $0.value.expires > now }
                if entries.count >= Self.capacity { entries.removeAll() }
            }
            entries[key] = entry
        }
    }
}
