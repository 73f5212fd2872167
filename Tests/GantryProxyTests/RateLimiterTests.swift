import Foundation
import GantryConfig
import GantryCore
import Testing

@testable import GantryProxy

struct RateLimiterTests {
    /// Eight threads take from the same buckets at once; the count allowed is exact.
    @Test func concurrentTakesAreExact() async {
        let limiter = RateLimiter(bucket: TokenBucket(requests: 500, per: .seconds(3600)))
        let allowed = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var count = 0
                    for take in 0..<1000 {
                        if case .allow = limiter.take(take.isMultiple(of: 2) ? "a" : "b", now: 1) { count += 1 }
                    }
                    return count
                }
            }
            return await group.reduce(0, +)
        }
        #expect(allowed == 1000)  // 500 for each of the two keys
    }

    @Test func refilledBucketsAreForgotten() {
        let limiter = RateLimiter(bucket: TokenBucket(requests: 10, per: .seconds(1)))
        for client in 0..<1000 { _ = limiter.take("client-\(client)", now: 0) }
        #expect(limiter.keyCount == 1000)
        limiter.forgetRefilled(now: 500_000_000)  // half a second later: 9 + 5 tokens, so full
        #expect(limiter.keyCount == 0)
    }
}
