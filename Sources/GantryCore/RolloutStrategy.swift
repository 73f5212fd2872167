/// A Deployment's RollingUpdate strategy: how far above the wanted replicas a rollout may go
/// (`maxSurge`) and how many may be unavailable meanwhile (`maxUnavailable`), each a count or
/// a percentage of the replicas, with Kubernetes' rounding (surge up, unavailable down) and
/// defaults (25% and 25%).
public struct RolloutStrategy: Sendable, Hashable, CustomStringConvertible {
    public enum Amount: Sendable, Hashable, CustomStringConvertible {
        case count(Int)
        case percent(Int)

        public var description: String {
            switch self {
            case .count(let count): "\(count)"
            case .percent(let percent): "\(percent)%"
            }
        }

        func resolve(_ replicas: Int, roundingUp: Bool) -> Int {
            switch self {
            case .count(let count): return count
            case .percent(let percent):
                let scaled = replicas * percent
                return roundingUp ? (scaled + 99) / 100 : scaled / 100
            }
        }
    }

    public let maxSurge: Amount
    public let maxUnavailable: Amount

    public static let kubernetesDefault = RolloutStrategy(maxSurge: .percent(25), maxUnavailable: .percent(25))

    public init(maxSurge: Amount, maxUnavailable: Amount) {
        self.maxSurge = maxSurge
        self.maxUnavailable = maxUnavailable
    }

    public var description: String { "maxSurge \(maxSurge), maxUnavailable \(maxUnavailable)" }

    /// The surge and unavailability allowed for `replicas`. When both come to zero, one pod
    /// may be unavailable, as Kubernetes does, or the rollout could never move.
    public func limits(for replicas: Int) -> (surge: Int, unavailable: Int) {
        let surge = maxSurge.resolve(replicas, roundingUp: true)
        let unavailable = maxUnavailable.resolve(replicas, roundingUp: false)
        return surge == 0 && unavailable == 0 ? (0, 1) : (surge, unavailable)
    }

    /// One step of a rollout towards `replicas` pods of the new template: how many new pods to
    /// create now, and how many old ones to stop (those not ready first: they serve nothing).
    /// Pods being stopped count as neither.
    public func step(replicas: Int, old: (total: Int, ready: Int), new: (total: Int, ready: Int)) -> (create: Int, stop: Int) {
        let (surge, unavailable) = limits(for: replicas)
        let create = max(0, min(replicas + surge - old.total - new.total, replicas - new.total))
        let available = old.ready + new.ready
        let stoppable = max(0, available - max(0, replicas - unavailable))
        let stop = min(old.total, (old.total - old.ready) + min(stoppable, old.ready))
        return (create, stop)
    }
}
