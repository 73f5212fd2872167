import Testing

@testable import GantryCore

private typealias A = Autoscaling

/// Table tests of the HPA decision, case by case as Kubernetes' replica calculator and
/// horizontal controller decide them.
struct HPACalculatorTests {
    static let now = 10_000.0

    private func pod(_ name: String, cpu: Double? = nil, rps: Double? = nil, ready: Bool = true, age: Double = 1000, pending: Bool = false)
        -> A.Pod
    {
        var samples: [String: Double] = [:]
        samples["cpu"] = cpu
        samples["requestsPerSecond"] = rps
        return A.Pod(name: name, ready: ready, started: Self.now - age, cpuRequest: 100, samples: samples, pending: pending)
    }

    private func input(
        current: Int, min: Int = 1, max: Int = 10, targets: [A.Target] = [.cpuUtilization(percent: 50)], pods: [A.Pod],
        behavior: A.Behavior = A.Behavior(), recommendations: [A.Recommendation] = [], up: [A.ScaleEvent] = [], down: [A.ScaleEvent] = []
    ) -> A.Input {
        A.Input(
            currentReplicas: current, minReplicas: min, maxReplicas: max, targets: targets, pods: pods, behavior: behavior,
            recommendations: recommendations, scaleUpEvents: up, scaleDownEvents: down, now: Self.now)
    }

    @Test func withinToleranceNothingChanges() {
        let calm = HPACalculator.decide(input(current: 2, pods: [pod("a", cpu: 54.9), pod("b", cpu: 54.9)]))
        #expect(calm.desiredReplicas == 2)
        #expect(calm.reason == "cpu 54%/50% of request")  // whole percent, as Kubernetes computes it
        let busy = HPACalculator.decide(input(current: 2, pods: [pod("a", cpu: 56), pod("b", cpu: 56)]))
        #expect(busy.desiredReplicas == 3)  // ceil(1.12 × 2)
    }

    @Test func averageValueMetricsScaleWithinTheDefaultScaleUpRate() {
        let decision = HPACalculator.decide(
            input(
                current: 2, targets: [.averageValue(metric: "requestsPerSecond", value: 50)],
                pods: [pod("a", rps: 400), pod("b", rps: 424)]))
        #expect(decision.recommendedReplicas == 17)  // ceil(412/50 × 2)
        #expect(decision.desiredReplicas == 6)  // max(double, +4) per 15 s
        #expect(decision.limits == ["ScaleUpLimit"])
        #expect(decision.reason == "requestsPerSecond 412/50 per pod")
        #expect(decision.recommendationToRecord == A.Recommendation(time: Self.now, replicas: 17))
    }

    @Test func missingPodsCountAtTheTargetOnScaleDown() {
        // 20 % and 20 % alone would say 1 pod; the third pod, without a sample, counts at 100 %
        // of its request: (20 + 20 + 100) / 3 = 46.7 %, within tolerance of 50 %.
        let decision = HPACalculator.decide(input(current: 3, pods: [pod("a", cpu: 20), pod("b", cpu: 20), pod("c")]))
        #expect(decision.desiredReplicas == 3)
    }

    @Test func missingPodsCountAsZeroOnScaleUp() {
        let decision = HPACalculator.decide(input(current: 3, pods: [pod("a", cpu: 150), pod("b", cpu: 150), pod("c")]))
        #expect(decision.recommendedReplicas == 6)  // (150 + 150 + 0) / 3 = 100 % → ratio 2 × 3
    }

    @Test func unreadyPodsCountAsZeroOnScaleUp() {
        let decision = HPACalculator.decide(
            input(current: 3, pods: [pod("a", cpu: 100), pod("b", cpu: 100), pod("c", cpu: 300, ready: false, age: 30)]))
        #expect(decision.recommendedReplicas == 4)  // (100 + 100 + 0) / 3 = 66.7 % → ceil(1.33 × 3)
        // Past its initialization period the CPU of a pod that was ready and is not any more
        // counts as it is.
        var fallen = pod("c", cpu: 300, ready: false, age: 1000)
        fallen.readyTransition = Self.now - 60
        let old = HPACalculator.decide(input(current: 3, pods: [pod("a", cpu: 100), pod("b", cpu: 100), fallen]))
        #expect(old.recommendedReplicas == 10)
        // Pending pods are unready for every metric.
        let pending = HPACalculator.decide(
            input(
                current: 3, targets: [.averageValue(metric: "requestsPerSecond", value: 10)],
                pods: [pod("a", rps: 20), pod("b", rps: 20), pod("c", pending: true)]))
        #expect(pending.recommendedReplicas == 4)  // (20 + 20 + 0) / 3 / 10 → ceil(1.33 × 3)
    }

    @Test func noChangeWhenFillingInWouldFlipTheDirection() {
        let decision = HPACalculator.decide(input(current: 2, pods: [pod("a", cpu: 60), pod("b", cpu: 0, ready: false, age: 10)]))
        #expect(decision.desiredReplicas == 2)  // 60 % says up; with the unready pod at 0 it would be 30 %: down
        #expect(decision.proposals[0].note == "no change once pods without samples are counted")
    }

    @Test func theLargestProposalWins() {
        let decision = HPACalculator.decide(
            input(
                current: 2, targets: [.cpuUtilization(percent: 50), .averageValue(metric: "requestsPerSecond", value: 50)],
                pods: [pod("a", cpu: 70, rps: 120), pod("b", cpu: 70, rps: 130)]))
        #expect(decision.proposals.map(\.replicas) == [3, 5])
        #expect(decision.desiredReplicas == 5)
        #expect(decision.reason == "requestsPerSecond 125/50 per pod")
    }

    @Test func withMetricsMissingOnlyScalingUpIsAllowed() {
        let targets: [A.Target] = [.cpuUtilization(percent: 50), .averageValue(metric: "requestsPerSecond", value: 50)]
        let down = HPACalculator.decide(input(current: 3, targets: targets, pods: [pod("a", rps: 5), pod("b", rps: 5), pod("c", rps: 5)]))
        #expect(down.desiredReplicas == 3)
        #expect(down.limits == ["MetricsUnavailable"])
        let up = HPACalculator.decide(input(current: 3, targets: targets, pods: [pod("a", rps: 90), pod("b", rps: 90), pod("c", rps: 90)]))
        #expect(up.desiredReplicas == 6)
        let none = HPACalculator.decide(input(current: 3, pods: [pod("a"), pod("b")]))
        #expect(none.desiredReplicas == 3)
        #expect(none.limits == ["MetricsUnavailable"])
    }

    @Test func scaleDownWaitsForItsStabilizationWindow() {
        let pods = [pod("a", cpu: 10), pod("b", cpu: 10), pod("c", cpu: 10), pod("d", cpu: 10), pod("e", cpu: 10)]
        let held = HPACalculator.decide(input(current: 5, pods: pods, recommendations: [A.Recommendation(time: Self.now - 100, replicas: 5)]))
        #expect(held.recommendedReplicas == 1)
        #expect(held.desiredReplicas == 5)
        #expect(held.limits == ["ScaleDownStabilized"])
        let released = HPACalculator.decide(input(current: 5, pods: pods, recommendations: [A.Recommendation(time: Self.now - 301, replicas: 5)]))
        #expect(released.desiredReplicas == 1)
        #expect(released.limits.isEmpty)
    }

    @Test func scaleUpStabilizationTakesTheLowestRecentRecommendation() {
        let behavior = A.Behavior(scaleUp: A.ScalingRules(stabilizationWindowSeconds: 60, selectPolicy: .max, policies: A.ScalingRules.defaultScaleUp.policies))
        let decision = HPACalculator.decide(
            input(current: 2, pods: [pod("a", cpu: 150), pod("b", cpu: 150)], behavior: behavior,
                  recommendations: [A.Recommendation(time: Self.now - 30, replicas: 3)]))
        #expect(decision.recommendedReplicas == 6)
        #expect(decision.desiredReplicas == 3)
        #expect(decision.limits == ["ScaleUpStabilized"])
    }

    @Test func podsAndPercentPoliciesLimitTheRate() {
        let onePerMinute = A.Behavior(
            scaleDown: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .max, policies: [A.ScalingPolicy(type: .pods, value: 1, periodSeconds: 60)]))
        let idle = (0..<5).map { pod("p\($0)", cpu: 5) }
        let first = HPACalculator.decide(input(current: 5, pods: idle, behavior: onePerMinute))
        #expect(first.desiredReplicas == 4)
        #expect(first.limits == ["ScaleDownLimit"])
        let again = HPACalculator.decide(input(current: 4, pods: Array(idle.prefix(4)), behavior: onePerMinute, down: [A.ScaleEvent(time: Self.now - 30, change: 1)]))
        #expect(again.desiredReplicas == 4)  // this minute's one pod is spent

        let halfMore = A.Behavior(
            scaleUp: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .max, policies: [A.ScalingPolicy(type: .percent, value: 50, periodSeconds: 60)]))
        let hot = (0..<4).map { pod("p\($0)", cpu: 200) }
        #expect(HPACalculator.decide(input(current: 4, max: 20, pods: hot, behavior: halfMore)).desiredReplicas == 6)
        // 2 of the 4 pods were added within the period: it started at 2, so 3 is the limit,
        // and the limit never scales down.
        #expect(HPACalculator.decide(input(current: 4, max: 20, pods: hot, behavior: halfMore, up: [A.ScaleEvent(time: Self.now - 10, change: 2)])).desiredReplicas == 4)
    }

    @Test func selectPolicyMinAndDisabled() {
        let minUp = A.Behavior(
            scaleUp: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .min, policies: A.ScalingRules.defaultScaleUp.policies))
        let hot = [pod("a", cpu: 500), pod("b", cpu: 500)]
        #expect(HPACalculator.decide(input(current: 2, max: 50, pods: hot)).desiredReplicas == 6)  // Max: +4 beats ×2
        #expect(HPACalculator.decide(input(current: 2, max: 50, pods: hot, behavior: minUp)).desiredReplicas == 4)  // Min: ×2
        let noDown = A.Behavior(scaleDown: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .disabled, policies: []))
        let cold = HPACalculator.decide(input(current: 3, pods: [pod("a", cpu: 1), pod("b", cpu: 1), pod("c", cpu: 1)], behavior: noDown))
        #expect(cold.desiredReplicas == 3)
        #expect(cold.limits == ["ScaleDownLimit"])
    }

    @Test func minAndMaxReplicas() {
        let generous = A.Behavior(
            scaleUp: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .max, policies: [A.ScalingPolicy(type: .percent, value: 1000, periodSeconds: 15)]),
            scaleDown: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .max, policies: [A.ScalingPolicy(type: .percent, value: 100, periodSeconds: 15)]))
        let up = HPACalculator.decide(input(current: 2, max: 10, pods: [pod("a", cpu: 900), pod("b", cpu: 900)], behavior: generous))
        #expect(up.desiredReplicas == 10)
        #expect(up.limits == ["TooManyReplicas"])
        let down = HPACalculator.decide(input(current: 4, min: 2, pods: (0..<4).map { pod("p\($0)", cpu: 1) }, behavior: generous))
        #expect(down.desiredReplicas == 2)
        #expect(down.limits == ["TooFewReplicas"])
        #expect(HPACalculator.decide(input(current: 12, max: 10, pods: [])).desiredReplicas == 10)
        #expect(HPACalculator.decide(input(current: 1, min: 2, pods: [])).desiredReplicas == 2)
        #expect(HPACalculator.decide(input(current: 0, pods: [])).desiredReplicas == 0)
    }

    /// Kubernetes' `groupPods` for CPU. Inside the initialization period (300 s) a sample counts
    /// only from a ready pod and only if taken a whole window after it became ready; past it,
    /// only a pod that never became ready (its readiness last changed within 30 s of its start)
    /// is left out.
    @Test func cpuSamplesAreGroupedAsKubernetesDoes() {
        func grouping(_ pod: A.Pod) -> (ready: [String], unready: [String]) {
            let decision = HPACalculator.decide(input(current: 2, pods: [pod, self.pod("steady", cpu: 50)]))
            return (decision.proposals[0].ready ?? [], decision.proposals[0].unready ?? [])
        }
        func young(ready: Bool, becameReady: Double, sampledAt: Double) -> A.Pod {
            A.Pod(
                name: "new", ready: ready, started: Self.now - 100, cpuRequest: 100, samples: ["cpu": 90], readyTransition: Self.now - becameReady,
                sampleTime: Self.now - sampledAt, sampleWindow: 30)
        }
        // Became ready 40 s ago: a sample taken 5 s ago covers 30 s of readiness, one taken 20 s ago does not.
        #expect(grouping(young(ready: true, becameReady: 40, sampledAt: 5)).ready == ["new", "steady"])
        #expect(grouping(young(ready: true, becameReady: 40, sampledAt: 20)).unready == ["new"])
        #expect(grouping(young(ready: false, becameReady: 40, sampledAt: 5)).unready == ["new"])
        func old(becameUnready: Double) -> A.Pod {
            A.Pod(name: "old", ready: false, started: Self.now - 1000, cpuRequest: 100, samples: ["cpu": 90], readyTransition: Self.now - becameUnready)
        }
        // Unready since 10 s after its start (never ready): left out. Unready since a minute ago,
        // after having been ready: its sample counts.
        #expect(grouping(old(becameUnready: 990)).unready == ["old"])
        #expect(grouping(old(becameUnready: 60)).ready == ["old", "steady"])
    }

    /// A failed or crash-looping pod is left out of the calculation, not counted as a pod
    /// without metrics (which would hold a scale-down back).
    @Test func failedPodsAreLeftOutNotMissing() {
        var broken = pod("c")
        broken.failed = true
        let decision = HPACalculator.decide(input(current: 3, pods: [pod("a", cpu: 10), pod("b", cpu: 10), broken]))
        #expect(decision.proposals[0].ignored == ["c"] && decision.proposals[0].missing == [])
        #expect(decision.recommendedReplicas == 1)  // ceil(0.2 × 2 ready pods); as missing, "c" would have counted at the target
    }

    /// A rate policy counts from the replicas at the start of its period: the pods added in it
    /// taken away and the pods removed in it put back.
    @Test func aPeriodStartsFromBothDirectionsOfScaling() {
        let onePodPerMinute = A.Behavior(
            scaleUp: A.ScalingRules(stabilizationWindowSeconds: 0, selectPolicy: .max, policies: [A.ScalingPolicy(type: .pods, value: 1, periodSeconds: 60)]))
        // 4 now, after +2 and −2 within the minute: the period began at 4, so one more is allowed.
        let decision = HPACalculator.decide(
            input(
                current: 4, targets: [.averageValue(metric: "requestsPerSecond", value: 10)],
                pods: (0..<4).map { pod("p\($0)", rps: 100) }, behavior: onePodPerMinute,
                up: [A.ScaleEvent(time: Self.now - 30, change: 2)], down: [A.ScaleEvent(time: Self.now - 20, change: 2)]))
        #expect(decision.desiredReplicas == 5)
        #expect(decision.limits == ["ScaleUpLimit"])
    }

    /// `Object` and `External` metrics: a `Value` target scales the ready pods by usage ÷
    /// target, an `AverageValue` target asks for usage ÷ target replicas.
    @Test func objectAndExternalMetrics() {
        func decide(_ target: A.Target, value: Double?) -> A.Decision {
            var moment = input(current: 2, targets: [target], pods: [pod("a"), pod("b"), pod("c", ready: false)])
            moment.metricValues = value.map { [target.name: $0] } ?? [:]
            return HPACalculator.decide(moment)
        }
        let route = "requestsPerSecond{route=\"app\"}"
        #expect(decide(.object(metric: route, target: .value(100)), value: 300).recommendedReplicas == 6)  // 3 × 2 ready pods
        #expect(decide(.object(metric: route, target: .value(100)), value: 105).recommendedReplicas == 2)  // within tolerance
        #expect(decide(.external(metric: "jobs", target: .averageValue(50)), value: 300).recommendedReplicas == 6)  // 300 ÷ 50
        #expect(decide(.external(metric: "jobs", target: .averageValue(50)), value: 95).recommendedReplicas == 2)  // 95 ÷ (50 × 2) within tolerance
        let none = decide(.external(metric: "jobs", target: .averageValue(50)), value: nil)
        #expect(none.limits == ["MetricsUnavailable"] && none.desiredReplicas == 2)
        #expect(decide(.external(metric: "jobs", target: .value(10)), value: 40).reason == "jobs 40/10 in total, from 2 ready pods")
    }

    /// A Prometheus series is the sum of the samples of its name whose labels include the
    /// selector's, as `sum(name{…})` gives.
    @Test func prometheusSeriesAreReadFromTheTextFormat() throws {
        let scrape = """
            # HELP jobs_waiting Jobs in the queue
            # TYPE jobs_waiting gauge
            jobs_waiting{queue="email",shard="1"} 12
            jobs_waiting{queue="email",shard="2"} 7.5
            jobs_waiting{queue="sms"} 100
            jobs_waiting_total 3
            other 1e3 1700000000000
            """
        #expect(try #require(PrometheusSeries(parsing: #"jobs_waiting{queue="email"}"#)).value(in: scrape) == 19.5)
        #expect(try #require(PrometheusSeries(parsing: "jobs_waiting")).value(in: scrape) == 119.5)
        #expect(try #require(PrometheusSeries(parsing: "other")).value(in: scrape) == 1000)
        #expect(try #require(PrometheusSeries(parsing: #"jobs_waiting{queue="none"}"#)).value(in: scrape) == nil)
        #expect(PrometheusSeries(parsing: "jobs{queue=email}") == nil)
        #expect(PrometheusSeries(parsing: "9lives") == nil)
        #expect(PrometheusSeries(parsing: #"a{b="c",d="e"}"#)?.description == #"a{b="c",d="e"}"#)
    }
}
