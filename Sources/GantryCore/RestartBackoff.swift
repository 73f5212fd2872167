/// The kubelet's CrashLoopBackOff: a container that exits is restarted at once the first time,
/// then after 10 s, doubling with each restart up to 5 minutes; a container that ran for 10
/// minutes (twice the cap) starts over.
public struct RestartBackoff: Sendable, Hashable {
    public let initial: Duration
    public let maximum: Duration
    /// A run at least this long resets the delay to `initial`.
    public let resetAfter: Duration
    /// The delay the next restart waits.
    public private(set) var current: Duration = .zero

    public init(initial: Duration = .seconds(10), maximum: Duration = .seconds(300), resetAfter: Duration? = nil) {
        self.initial = initial
        self.maximum = maximum
        self.resetAfter = resetAfter ?? maximum * 2
    }

    /// Records that the container exited after running for `ranFor`.
    /// - Returns: how long to wait before starting it again.
    public mutating func exited(afterRunning ranFor: Duration) -> Duration {
        if ranFor >= resetAfter { current = .zero }
        let delay = current
        current = current == .zero ? initial : min(current * 2, maximum)
        return delay
    }
}
