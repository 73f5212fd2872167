import NIOCore

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

extension NIODeadline {
    /// Milliseconds from `start` to this deadline, for logs.
    func milliseconds(since start: NIODeadline) -> Double {
        Double((self - start).nanoseconds) / 1_000_000
    }
}
