import NIOCore

extension TimeAmount {
    init(_ duration: Duration) {
        self = .nanoseconds(duration.nanoseconds)
    }
}

extension NIODeadline {
    /// Milliseconds from `start` to this deadline, for logs.
    func milliseconds(since start: NIODeadline) -> Double {
        Double((self - start).nanoseconds) / 1_000_000
    }
}

/// Milliseconds with three decimals (`12.345`), as the access log and `Server-Timing` write them.
func millisecondsText(_ value: Double) -> String {
    let thousandths = Int((value * 1000).rounded())
    let fraction = thousandths % 1000
    return "\(thousandths / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
}
