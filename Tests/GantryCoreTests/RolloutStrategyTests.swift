import Testing

@testable import GantryCore

/// Kubernetes' rolling update arithmetic: rounding of percentages, and each step's pods to
/// create and to stop.
struct RolloutStrategyTests {
    @Test(arguments: [
        // replicas, maxSurge, maxUnavailable → surge, unavailable
        (2, RolloutStrategy.Amount.percent(25), RolloutStrategy.Amount.percent(25), 1, 0),
        (4, .percent(25), .percent(25), 1, 1),
        (10, .percent(25), .percent(25), 3, 2),
        (1, .percent(25), .percent(25), 1, 0),
        (3, .count(0), .count(0), 0, 1),  // both zero: one may be unavailable, as Kubernetes does
        (5, .count(2), .percent(0), 2, 0),
    ])
    func limitsRoundAsKubernetes(replicas: Int, surge: RolloutStrategy.Amount, unavailable: RolloutStrategy.Amount, wantSurge: Int, wantUnavailable: Int) {
        let limits = RolloutStrategy(maxSurge: surge, maxUnavailable: unavailable).limits(for: replicas)
        #expect(limits.surge == wantSurge)
        #expect(limits.unavailable == wantUnavailable)
    }

    struct Step: Sendable, CustomTestStringConvertible {
        let replicas: Int
        let old: (total: Int, ready: Int)
        let new: (total: Int, ready: Int)
        let create: Int
        let stop: Int
        var testDescription: String { "\(replicas) wanted, old \(old), new \(new) → create \(create), stop \(stop)" }
    }

    @Test(arguments: [
        // The defaults with 2 replicas: one new pod first, an old one stops only once it is ready.
        Step(replicas: 2, old: (2, 2), new: (0, 0), create: 1, stop: 0),
        Step(replicas: 2, old: (2, 2), new: (1, 0), create: 0, stop: 0),
        Step(replicas: 2, old: (2, 2), new: (1, 1), create: 0, stop: 1),
        Step(replicas: 2, old: (1, 1), new: (1, 1), create: 1, stop: 0),
        Step(replicas: 2, old: (1, 1), new: (2, 2), create: 0, stop: 1),
        // An old pod that is not ready serves nothing: it may always go.
        Step(replicas: 2, old: (2, 1), new: (0, 0), create: 1, stop: 1),
        // 4 replicas: one above and one below at a time.
        Step(replicas: 4, old: (4, 4), new: (0, 0), create: 1, stop: 1),
        // Scaled to zero meanwhile: every old pod goes.
        Step(replicas: 0, old: (2, 2), new: (0, 0), create: 0, stop: 2),
    ])
    func stepsKeepCapacity(_ step: Step) {
        let result = RolloutStrategy.kubernetesDefault.step(replicas: step.replicas, old: step.old, new: step.new)
        #expect(result.create == step.create)
        #expect(result.stop == step.stop)
    }
}
