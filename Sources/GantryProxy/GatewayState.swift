import GantryConfig
import GantryCore

/// What gateway policies share across event loops: the rate limiters, and the requests to
/// fetch a JWT key set again when a token names a key gantry does not know yet.
final class GatewayState: Sendable {
    /// By policy index; nil for policies that are not rate limits.
    let limiters: [RateLimiter?]
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
