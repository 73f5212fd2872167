/// Turns a probe's individual results into a verdict the way the kubelet does: a probe is
/// `failing` after `failureThreshold` consecutive failures and `passing` after
/// `successThreshold` consecutive successes; in between it keeps its last verdict.
public struct ProbeTracker: Sendable, Hashable {
    public enum Verdict: Sendable, Hashable {
        /// No verdict yet: readiness counts this as not ready, liveness and startup as alive.
        case unknown
        case passing
        case failing
    }

    public let successThreshold: Int
    public let failureThreshold: Int
    public private(set) var verdict: Verdict = .unknown
    public private(set) var consecutiveSuccesses = 0
    public private(set) var consecutiveFailures = 0

    public init(successThreshold: Int, failureThreshold: Int) {
        self.successThreshold = max(1, successThreshold)
        self.failureThreshold = max(1, failureThreshold)
    }

    public init(_ probe: Probe) {
        self.init(successThreshold: probe.successThreshold, failureThreshold: probe.failureThreshold)
    }

    /// Records one result.
    /// - Returns: the new verdict when this result changed it.
    @discardableResult
    public mutating func record(success: Bool) -> Verdict? {
        if success {
            consecutiveSuccesses += 1
            consecutiveFailures = 0
            if consecutiveSuccesses >= successThreshold, verdict != .passing {
                verdict = .passing
                return verdict
            }
        } else {
            consecutiveFailures += 1
            consecutiveSuccesses = 0
            if consecutiveFailures >= failureThreshold, verdict != .failing {
                verdict = .failing
                return verdict
            }
        }
        return nil
    }
}
