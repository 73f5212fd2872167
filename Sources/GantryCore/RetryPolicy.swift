/// Why an attempt to reach an upstream failed before a response head was forwarded.
public enum AttemptFailure: String, Sendable, Hashable, CaseIterable {
    /// The connection could not be established (refused, unreachable, connect timeout).
    /// The request never left, so it is always safe to try another endpoint.
    case connectFailure
    /// The connection was reset or closed after the request was (partly) sent.
    case reset
    /// No response head within the response timeout.
    case timeout
    /// The upstream answered 502, 503 or 504.
    case gatewayError
}

/// When to retry, as Envoy's `retry_on` with `num_retries`: retries happen on another endpoint
/// when one is available, and only if repeating the request is safe.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first attempt.
    public var retries: Int
    public var retryOn: Set<AttemptFailure>

    public init(retries: Int = 2, retryOn: Set<AttemptFailure> = [.connectFailure, .reset]) {
        self.retries = retries
        self.retryOn = retryOn
    }

    /// Methods RFC 9110 §9.2.2 calls idempotent.
    public static func isIdempotent(_ method: String) -> Bool {
        switch method {
        case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE": return true
        default: return false
        }
    }

    /// - Parameters:
    ///   - attempts: attempts made so far, the failed one included.
    ///   - hasBody: the request carries a body; once sent, a body cannot be replayed.
    public func shouldRetry(after failure: AttemptFailure, attempts: Int, method: String, hasBody: Bool) -> Bool {
        guard attempts <= retries, retryOn.contains(failure) else { return false }
        if failure == .connectFailure { return true }
        return RetryPolicy.isIdempotent(method) && !hasBody
    }
}
