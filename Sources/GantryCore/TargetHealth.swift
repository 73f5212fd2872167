/// Active health of a service's targets, as a cloud load balancer's target group tracks it:
/// a healthy target turns unhealthy after `unhealthyThreshold` failed checks in a row, and an
/// unhealthy one healthy again after `healthyThreshold` passed checks in a row. A target not yet
/// checked counts as healthy (Envoy's default), so pods already gated by readiness and static
/// endpoints take traffic at once.
public struct TargetHealth<Target: Hashable & Sendable>: Sendable {
    public struct Status: Sendable, Hashable {
        public var healthy = true
        /// Passed (positive) or failed (negative) checks in a row.
        public var streak = 0
        /// Why the last check failed, for `gantry get services`.
        public var lastFailure: String?
    }

    public let healthyThreshold: Int
    public let unhealthyThreshold: Int
    private var statuses: [Target: Status] = [:]

    public init(healthyThreshold: Int, unhealthyThreshold: Int) {
        self.healthyThreshold = max(1, healthyThreshold)
        self.unhealthyThreshold = max(1, unhealthyThreshold)
    }

    public func status(of target: Target) -> Status { statuses[target] ?? Status() }

    public func isHealthy(_ target: Target) -> Bool { statuses[target]?.healthy ?? true }

    /// Records one check. Returns true when the target's health changed.
    @discardableResult
    public mutating func record(_ target: Target, passed: Bool, failure: String? = nil) -> Bool {
        var status = statuses[target] ?? Status()
        let wasHealthy = status.healthy
        if passed {
            status.streak = max(status.streak, 0) + 1
            status.lastFailure = nil
            if !status.healthy, status.streak >= healthyThreshold { status.healthy = true }
        } else {
            status.streak = min(status.streak, 0) - 1
            status.lastFailure = failure
            if status.healthy, -status.streak >= unhealthyThreshold { status.healthy = false }
        }
        statuses[target] = status
        return status.healthy != wasHealthy
    }

    /// Forgets targets that left, so one that comes back starts afresh.
    public mutating func retain(_ targets: Set<Target>) {
        statuses = statuses.filter { targets.contains($0.key) }
    }
}

/// Which response codes pass a health check, written as ALB's matcher: `200`, `200,204`,
/// `200-399`.
public struct StatusMatcher: Sendable, Hashable, CustomStringConvertible {
    public let ranges: [ClosedRange<Int>]
    public let description: String

    public init?(_ text: String) {
        var ranges: [ClosedRange<Int>] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: " ") }
            guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds.last!), (100...599).contains(low),
                (low...599).contains(high)
            else { return nil }
            ranges.append(low...high)
        }
        self.ranges = ranges
        self.description = text
    }

    public func matches(_ status: Int) -> Bool { ranges.contains { $0.contains(status) } }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: Character) -> Substring {
        var result = self
        while result.first == set { result.removeFirst() }
        while result.last == set { result.removeLast() }
        return result
    }
}
