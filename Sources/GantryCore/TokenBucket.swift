/// The token bucket of a rate limit (`requests` per `period`, up to `burst` at once), as
/// pure arithmetic on a stored state; time is a parameter in nanoseconds.
public struct TokenBucket: Sendable, Hashable {
    public let requests: Int
    public let period: Duration
    public let burst: Int

    public struct State: Sendable, Hashable {
        public var tokens: Double
        public var updated: UInt64
    }

    public enum Decision: Sendable, Equatable {
        /// Allowed; `remaining` whole tokens are left.
        case allow(remaining: Int)
        /// Refused; a token will be there in `retryAfter`.
        case deny(retryAfter: Duration)
    }

    public init(requests: Int, per period: Duration, burst: Int? = nil) {
        self.requests = max(1, requests)
        self.period = period
        self.burst = max(1, burst ?? requests)
    }

    public var nanosecondsPerToken: Double {
        let (seconds, attoseconds) = period.components
        return (Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(requests)
    }

    public func fresh(now: UInt64) -> State {
        State(tokens: Double(burst), updated: now)
    }

    /// Takes one token if there is one.
    public func take(_ state: inout State, now: UInt64) -> Decision {
        if now > state.updated {
            state.tokens = min(Double(burst), state.tokens + Double(now - state.updated) / nanosecondsPerToken)
            state.updated = now
        }
        if state.tokens >= 1 {
            state.tokens -= 1
            return .allow(remaining: Int(state.tokens))
        }
        let wait = (1 - state.tokens) * nanosecondsPerToken
        return .deny(retryAfter: .nanoseconds(Int64(wait.rounded(.up))))
    }

    /// Whether a state has refilled completely, so that forgetting it changes nothing.
    public func isFull(_ state: State, now: UInt64) -> Bool {
        now >= state.updated && state.tokens + Double(now - state.updated) / nanosecondsPerToken >= Double(burst)
    }
}
