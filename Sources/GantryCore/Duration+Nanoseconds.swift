extension Duration {
    /// Whole nanoseconds, the unit of NIO's `TimeAmount` and of the deadlines kept as numbers.
    /// Reading a `Duration`'s components is a 128-bit division: hot paths convert once.
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension Duration {
    /// Seconds, rounded up: what `Retry-After` and the RateLimit fields carry.
    public var wholeSeconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) + (attoseconds > 0 ? 1 : 0)
    }
}
