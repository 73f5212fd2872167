/// The Horizontal Pod Autoscaler's decision, following Kubernetes'
/// `pkg/controller/podautoscaler` (`replica_calculator.go` for each metric's proposal,
/// `horizontal.go` for combining them, the stabilization windows and the `behavior` rate
/// policies). Pure: everything it knows is in the input, the time included.
public enum HPACalculator {
    public static func decide(_ input: Autoscaling.Input) -> Autoscaling.Decision {
        let current = input.currentReplicas
        func decision(_ desired: Int, recommended: Int, _ reason: String, limits: [String] = [], proposals: [Autoscaling.Proposal] = [])
            -> Autoscaling.Decision
        {
            Autoscaling.Decision(
                currentReplicas: current, desiredReplicas: desired, recommendedReplicas: recommended, reason: reason, limits: limits,
                proposals: proposals, recommendationToRecord: nil)
        }
        // As Kubernetes: zero replicas switches autoscaling off; out-of-range counts are
        // brought into range before metrics are even looked at.
        if current == 0 { return decision(0, recommended: 0, "scaled to zero: autoscaling is off") }
        if current > input.maxReplicas {
            return decision(input.maxReplicas, recommended: input.maxReplicas, "current replicas above maxReplicas", limits: ["TooManyReplicas"])
        }
        if current < input.minReplicas {
            return decision(input.minReplicas, recommended: input.minReplicas, "current replicas below minReplicas", limits: ["TooFewReplicas"])
        }

        let proposals = input.targets.map { proposal(for: $0, input) }
        let valid = proposals.filter { $0.replicas != nil }
        guard let best = valid.max(by: { $0.replicas! < $1.replicas! }) else {
            return decision(current, recommended: current, "no metric has samples yet", limits: ["MetricsUnavailable"], proposals: proposals)
        }
        var limits: [String] = []
        var recommended = best.replicas!
        // Some metrics unknown: they might want more pods, so only scaling up is safe.
        if valid.count < proposals.count && recommended < current {
            recommended = current
            limits.append("MetricsUnavailable")
        }

        let stabilized = stabilize(recommended, input)
        if stabilized != recommended { limits.append(recommended > current ? "ScaleUpStabilized" : "ScaleDownStabilized") }
        let (desired, rateLimit) = limitRate(stabilized, input)
        if let rateLimit { limits.append(rateLimit) }

        var result = decision(desired, recommended: recommended, describe(best), limits: limits, proposals: proposals)
        result.recommendationToRecord = Autoscaling.Recommendation(time: input.now, replicas: recommended)
        return result
    }

    static func describe(_ proposal: Autoscaling.Proposal) -> String {
        guard let current = proposal.current else { return "\(proposal.metric): \(proposal.note)" }
        if proposal.metric == "cpu" { return "cpu \(format(current))%/\(format(proposal.target))% of request" }
        if proposal.ready == nil { return "\(proposal.metric) \(format(current))/\(format(proposal.target)) \(proposal.note)" }
        return "\(proposal.metric) \(format(current))/\(format(proposal.target)) per pod"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String((value * 10).rounded() / 10)
    }

    // MARK: One metric (replica_calculator.go)

    static func proposal(for target: Autoscaling.Target, _ input: Autoscaling.Input) -> Autoscaling.Proposal {
        let name = target.name
        let isCPU: Bool
        let targetValue: Double
        switch target {
        case .cpuUtilization(let percent): (isCPU, targetValue) = (true, percent)
        case .averageValue(_, let value): (isCPU, targetValue) = (false, value)
        case .object(_, let quantity), .external(_, let quantity): return proposal(total: name, quantity, input)
        }
        // groupPods: failed → ignored; pending → unready; no sample → missing; for CPU, a sample
        // not to trust yet → unready.
        var metrics: [String: Double] = [:]
        var requests: [String: Double] = [:]
        var unready: [String] = []
        var missing: [String] = []
        var ignored: [String] = []
        for pod in input.pods {
            requests[pod.name] = pod.cpuRequest
            if pod.failed == true {
                ignored.append(pod.name)
                continue
            }
            if pod.pending == true {
                unready.append(pod.name)
                continue
            }
            guard let sample = pod.samples[name] else {
                missing.append(pod.name)
                continue
            }
            if isCPU, cpuSampleIsUnready(pod, input) {
                unready.append(pod.name)
                continue
            }
            metrics[pod.name] = sample
        }
        func grouped(_ proposal: Autoscaling.Proposal) -> Autoscaling.Proposal {
            var proposal = proposal
            proposal.ready = metrics.keys.sorted()
            proposal.unready = unready
            proposal.missing = missing
            proposal.ignored = ignored
            return proposal
        }
        func invalid(_ note: String) -> Autoscaling.Proposal {
            grouped(Autoscaling.Proposal(metric: name, replicas: nil, current: nil, target: targetValue, note: note))
        }
        let readyCount = metrics.count
        guard readyCount > 0 else { return invalid("no samples from ready pods") }
        if isCPU, metrics.keys.contains(where: { (requests[$0] ?? 0) <= 0 }) {
            return invalid("pods have no cpu request")
        }

        func ratio(_ metrics: [String: Double]) -> (ratio: Double, average: Double) {
            if isCPU {
                let used = metrics.values.reduce(0, +)
                let requested = metrics.keys.reduce(0) { $0 + (requests[$1] ?? 0) }
                // Whole percent, as Kubernetes computes it (int64 arithmetic).
                let utilization = (used * 100 / requested).rounded(.towardZero)
                return (utilization / targetValue, utilization)
            }
            let average = metrics.values.reduce(0, +) / Double(metrics.count)
            return (average / targetValue, average)
        }
        let current = input.currentReplicas
        let (usageRatio, average) = ratio(metrics)
        func result(_ replicas: Int, _ note: String) -> Autoscaling.Proposal {
            grouped(Autoscaling.Proposal(metric: name, replicas: replicas, current: average, target: targetValue, note: note))
        }

        let scaleUpWithUnready = !unready.isEmpty && usageRatio > 1
        if !scaleUpWithUnready && missing.isEmpty {
            if abs(1 - usageRatio) <= input.tolerance { return result(current, "within tolerance") }
            return result(Int((usageRatio * Double(readyCount)).rounded(.up)), "from \(readyCount) pods")
        }
        // Fill in the pods without a usable sample the conservative way for the direction.
        var filled = metrics
        if !missing.isEmpty {
            for pod in missing {
                if usageRatio < 1 {
                    filled[pod] = isCPU ? (requests[pod] ?? 0) * max(100, targetValue) / 100 : targetValue
                } else if usageRatio > 1 {
                    filled[pod] = 0
                }
            }
        }
        if scaleUpWithUnready { for pod in unready { filled[pod] = 0 } }
        if isCPU, filled.keys.contains(where: { (requests[$0] ?? 0) <= 0 }) { return invalid("pods have no cpu request") }
        let newRatio = ratio(filled).ratio
        if abs(1 - newRatio) <= input.tolerance || (usageRatio < 1 && newRatio > 1) || (usageRatio > 1 && newRatio < 1) {
            return result(current, "no change once pods without samples are counted")
        }
        let replicas = Int((newRatio * Double(filled.count)).rounded(.up))
        if (newRatio < 1 && replicas > current) || (newRatio > 1 && replicas < current) {
            return result(current, "no change once pods without samples are counted")
        }
        return result(replicas, "from \(readyCount) pods, \(missing.count) without samples, \(unready.count) unready")
    }

    /// Whether a pod's CPU sample is not to be trusted yet (Kubernetes' `groupPods`). Inside
    /// the CPU initialization period a sample counts only from a ready pod, and only if it was
    /// taken a whole metric window after the pod became ready (before, it mixes in start-up
    /// work); past the period, only a pod that never became ready (its readiness last changed
    /// within the initial-readiness delay of its start) is left out.
    static func cpuSampleIsUnready(_ pod: Autoscaling.Pod, _ input: Autoscaling.Input) -> Bool {
        let transition = pod.readyTransition ?? pod.started
        if input.now < pod.started + input.cpuInitializationPeriod {
            return !pod.ready || (pod.sampleTime ?? input.now) < transition + (pod.sampleWindow ?? 0)
        }
        return !pod.ready && pod.started + input.initialReadinessDelay > transition
    }

    /// An `Object` or `External` metric (`GetObjectMetricReplicas`, `GetExternalMetricReplicas`
    /// and their per-pod forms): a `Value` target scales the ready pods by usage ÷ target; an
    /// `AverageValue` target asks for usage ÷ target replicas, unless usage per current replica
    /// is within tolerance of it.
    static func proposal(total name: String, _ quantity: Autoscaling.Quantity, _ input: Autoscaling.Input) -> Autoscaling.Proposal {
        let current = input.currentReplicas
        let target: Double
        switch quantity {
        case .value(let value), .averageValue(let value): target = value
        }
        guard let usage = input.metricValues[name] else {
            return Autoscaling.Proposal(metric: name, replicas: nil, current: nil, target: target, note: "no value")
        }
        switch quantity {
        case .value:
            let ratio = usage / target
            if abs(1 - ratio) <= input.tolerance {
                return Autoscaling.Proposal(metric: name, replicas: current, current: usage, target: target, note: "in total, within tolerance")
            }
            let ready = input.pods.filter { $0.ready && $0.failed != true && $0.pending != true }.count
            return Autoscaling.Proposal(
                metric: name, replicas: Int((ratio * Double(ready)).rounded(.up)), current: usage, target: target,
                note: "in total, from \(ready) ready pods")
        case .averageValue:
            let ratio = usage / (target * Double(current))
            if abs(1 - ratio) <= input.tolerance {
                return Autoscaling.Proposal(metric: name, replicas: current, current: usage, target: target, note: "per replica, within tolerance")
            }
            return Autoscaling.Proposal(
                metric: name, replicas: Int((usage / target).rounded(.up)), current: usage, target: target, note: "per replica")
        }
    }

    // MARK: Stabilization and rate (horizontal.go)

    static func stabilize(_ recommended: Int, _ input: Autoscaling.Input) -> Int {
        var up = recommended
        var down = recommended
        let upCutoff = input.now - Double(input.behavior.scaleUp.stabilizationWindowSeconds)
        let downCutoff = input.now - Double(input.behavior.scaleDown.stabilizationWindowSeconds)
        for earlier in input.recommendations {
            if earlier.time > upCutoff { up = min(up, earlier.replicas) }
            if earlier.time > downCutoff { down = max(down, earlier.replicas) }
        }
        var result = input.currentReplicas
        if result < up { result = up }
        if result > down { result = down }
        return result
    }

    static func limitRate(_ desired: Int, _ input: Autoscaling.Input) -> (Int, String?) {
        let current = input.currentReplicas
        if desired > current {
            let limit = max(current, scaleUpLimit(input))
            let allowed = min(input.maxReplicas, limit)
            if desired > allowed { return (allowed, input.maxReplicas > limit ? "ScaleUpLimit" : "TooManyReplicas") }
        } else if desired < current {
            let limit = min(current, scaleDownLimit(input))
            let allowed = max(input.minReplicas, limit)
            if desired < allowed { return (allowed, input.minReplicas < limit ? "ScaleDownLimit" : "TooFewReplicas") }
        }
        return (desired, nil)
    }

    static func changed(in periodSeconds: Int, _ events: [Autoscaling.ScaleEvent], now: Double) -> Int {
        events.filter { $0.time > now - Double(periodSeconds) }.reduce(0) { $0 + $1.change }
    }

    /// The replica count at the start of a policy's period: the pods added in it taken away,
    /// the pods removed in it put back (both directions, as Kubernetes counts them).
    static func periodStart(_ periodSeconds: Int, _ input: Autoscaling.Input) -> Int {
        input.currentReplicas - changed(in: periodSeconds, input.scaleUpEvents, now: input.now)
            + changed(in: periodSeconds, input.scaleDownEvents, now: input.now)
    }

    static func scaleUpLimit(_ input: Autoscaling.Input) -> Int {
        let rules = input.behavior.scaleUp
        let current = input.currentReplicas
        if rules.selectPolicy == .disabled { return current }
        var result = rules.selectPolicy == .min ? Int.max : Int.min
        for policy in rules.policies {
            let start = periodStart(policy.periodSeconds, input)
            let proposed: Int
            switch policy.type {
            case .pods: proposed = start + policy.value
            case .percent: proposed = Int((Double(start) * (1 + Double(policy.value) / 100)).rounded(.up))
            }
            result = rules.selectPolicy == .min ? min(result, proposed) : max(result, proposed)
        }
        return rules.policies.isEmpty ? current : result
    }

    static func scaleDownLimit(_ input: Autoscaling.Input) -> Int {
        let rules = input.behavior.scaleDown
        let current = input.currentReplicas
        if rules.selectPolicy == .disabled { return current }
        // For scaling down, Min selects the policy that removes the fewest pods.
        var result = rules.selectPolicy == .min ? Int.min : Int.max
        for policy in rules.policies {
            let start = periodStart(policy.periodSeconds, input)
            let proposed: Int
            switch policy.type {
            case .pods: proposed = start - policy.value
            case .percent: proposed = Int(Double(start) * (1 - Double(policy.value) / 100))
            }
            result = rules.selectPolicy == .min ? max(result, proposed) : min(result, proposed)
        }
        return rules.policies.isEmpty ? current : result
    }
}
