import GantryCore
import NIOConcurrencyHelpers

/// The buckets of one rate-limit policy, shared by every event loop so the limit is exact
/// however connections spread over loops. Keys are spread over shards, each behind its own
/// lock held for a few arithmetic operations; buckets that have refilled are forgotten, so
/// memory follows the number of recently active keys.
public final class RateLimiter: Sendable {
    private final class Shard: Sendable {
        let buckets = NIOLockedValueBox<(states: [String: TokenBucket.State], takes: Int)>(([:], 0))
    }

    public let bucket: TokenBucket
    private let shards: [Shard]

    public init(bucket: TokenBucket, shards: Int = 16) {
        self.bucket = bucket
        self.shards = (0..<shards).map { _ in Shard() }
    }

    public func take(_ key: String, now: UInt64) -> TokenBucket.Decision {
        let shard = shards[Int(StableHash.hash(key) % UInt64(shards.count))]
        return shard.buckets.withLockedValue { shard in
            var state = shard.states[key] ?? bucket.fresh(now: now)
            let decision = bucket.take(&state, now: now)
            shard.states[key] = state
            shard.takes += 1
            if shard.takes % 4096 == 0 {
                shard.states = shard.states.filter { !bucket.isFull($0.value, now: now) }
            }
            return decision
        }
    }

    /// Keys with a bucket in memory.
    public var keyCount: Int {
        shards.reduce(0) { total, shard in total + shard.buckets.withLockedValue { $0.states.count } }
    }

    public func forgetRefilled(now: UInt64) {
        for shard in shards {
            shard.buckets.withLockedValue { shard in shard.states = shard.states.filter { !bucket.isFull($0.value, now: now) } }
        }
    }
}
