/// The RateLimit header fields (draft-ietf-httpapi-ratelimit-headers) for a token bucket, and
/// `Retry-After`, as pure arithmetic. The bucket's quota is what a client can actually spend at
/// once, its burst, so `r` never exceeds `q`; the window `w` is the time the bucket takes to
/// fill from empty; `t` is, on every response alike, the seconds until the bucket is full
/// again. Seconds are rounded up: a client that waits as long as a field says is never early.
public enum RateLimitFields {
    /// `"NAME";q=QUOTA;w=WINDOW`.
    public static func policy(name: String, bucket: TokenBucket) -> String {
        "\"\(name)\";q=\(bucket.burst);w=\(max(1, seconds(Double(bucket.burst) * bucket.nanosecondsPerToken)))"
    }

    /// `"NAME";r=REMAINING;t=SECONDS`.
    public static func status(name: String, bucket: TokenBucket, decision: TokenBucket.Decision) -> String {
        let remaining: Int
        let untilFull: Double
        switch decision {
        case .allow(let left):
            // Whole tokens are known; a fraction more may be there, so this never says "full" early.
            remaining = left
            untilFull = Double(bucket.burst - left) * bucket.nanosecondsPerToken
        case .deny(let retryAfter):
            remaining = 0
            untilFull = Double(retryAfter.nanoseconds) + Double(bucket.burst - 1) * bucket.nanosecondsPerToken
        }
        return "\"\(name)\";r=\(remaining);t=\(seconds(untilFull))"
    }

    /// `Retry-After` for a refusal: the seconds until at least one request passes.
    public static func retryAfter(_ wait: Duration) -> Int {
        max(1, seconds(Double(wait.nanoseconds)))
    }

    /// Nanoseconds as whole seconds, rounded up; a microsecond over a whole second is the
    /// floating-point error of the product, not time.
    static func seconds(_ nanoseconds: Double) -> Int {
        max(0, Int(((nanoseconds - 1000) / 1e9).rounded(.up)))
    }
}
