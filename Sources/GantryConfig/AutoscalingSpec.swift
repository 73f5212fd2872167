import GantryCore

/// `services[i].autoscaling:` a HorizontalPodAutoscaler for the service's pods.
public struct AutoscalingSpec: Decodable, Sendable {
    /// Default: `pods.replicas`.
    public var minReplicas: Int?
    /// Required.
    public var maxReplicas: Int?
    /// How often metrics are sampled and a decision made. Default 5s (Kubernetes: 15s).
    public var syncPeriod: DurationSpec?
    /// Default: `[{cpu: {averageUtilization: 80}}]`, as Kubernetes.
    public var metrics: [MetricSpec]?
    public var behavior: BehaviorSpec?
}

/// Exactly one of the metrics.
public struct MetricSpec: Decodable, Sendable, ExclusiveKeys {
    /// CPU used as a percentage of `pods.resources.requests.cpu`, over the pod's whole process tree.
    public var cpu: UtilizationTargetSpec?
    /// Requests per second through gantry to each pod.
    public var requestsPerSecond: AverageValueTargetSpec?
    /// Requests in flight to each pod.
    public var inFlight: AverageValueTargetSpec?

    public static let exclusiveKeys = ExclusiveKeySet(["cpu", "requestsPerSecond", "inFlight"])
}

public struct UtilizationTargetSpec: Decodable, Sendable {
    public var averageUtilization: Double?
}

public struct AverageValueTargetSpec: Decodable, Sendable {
    public var averageValue: Double?
}

public struct BehaviorSpec: Decodable, Sendable {
    public var scaleUp: ScalingRulesSpec?
    public var scaleDown: ScalingRulesSpec?
}

public struct ScalingRulesSpec: Decodable, Sendable {
    public var stabilizationWindowSeconds: Int?
    public var selectPolicy: Autoscaling.SelectPolicy?
    public var policies: [ScalingPolicySpec]?
}

public struct ScalingPolicySpec: Decodable, Sendable {
    public var type: Autoscaling.PolicyType?
    public var value: Int?
    public var periodSeconds: Int?
}

extension Autoscaling.SelectPolicy: SpecEnum {}
extension Autoscaling.PolicyType: SpecEnum {}

/// A service's autoscaler, compiled.
public struct AutoscalingSettings: Sendable, Hashable {
    public let minReplicas: Int
    public let maxReplicas: Int
    public let syncPeriod: Duration
    public let targets: [Autoscaling.Target]
    public let behavior: Autoscaling.Behavior
}

extension SpecCompiler {
    mutating func compileAutoscaling(_ spec: AutoscalingSpec, pods: PodTemplate?, at path: SpecPath) -> AutoscalingSettings? {
        let before = issues.count
        guard let pods else {
            problem(path, "autoscaling needs pods: a service with static endpoints has nothing to scale")
            return nil
        }
        let minimum = spec.minReplicas ?? max(1, pods.replicas)
        if minimum < 1 { problem(path / "minReplicas", "must be at least 1") }
        guard let maximum = spec.maxReplicas else {
            problem(path / "maxReplicas", "missing required key \"maxReplicas\"")
            return nil
        }
        if maximum < minimum { problem(path / "maxReplicas", "must not be below minReplicas (\(minimum))") }
        if maximum > 1000 { problem(path / "maxReplicas", "must be at most 1000") }
        var targets: [Autoscaling.Target] = []
        for (index, metric) in (spec.metrics ?? []).enumerated() {
            let here = path / "metrics" / index
            if let cpu = metric.cpu {
                guard let percent = cpu.averageUtilization, percent > 0 else {
                    problem(here / "cpu" / "averageUtilization", "needs a percentage above 0, e.g. 50")
                    continue
                }
                if pods.cpuRequestMillicores == nil {
                    problem(here / "cpu", "CPU utilization needs pods.resources.requests.cpu")
                }
                targets.append(.cpuUtilization(percent: percent))
            } else {
                let (name, target) = metric.requestsPerSecond.map { ("requestsPerSecond", $0) } ?? ("inFlight", metric.inFlight!)
                guard let value = target.averageValue, value > 0 else {
                    problem(here / name / "averageValue", "needs a value above 0")
                    continue
                }
                targets.append(.averageValue(metric: name, value: value))
            }
        }
        if spec.metrics == nil {
            if pods.cpuRequestMillicores == nil {
                problem(path / "metrics", "without metrics the target is 80% CPU, which needs pods.resources.requests.cpu")
            }
            targets = [.cpuUtilization(percent: 80)]
        }
        let behavior = Autoscaling.Behavior(
            scaleUp: compileRules(spec.behavior?.scaleUp, default: .defaultScaleUp, at: path / "behavior" / "scaleUp"),
            scaleDown: compileRules(spec.behavior?.scaleDown, default: .defaultScaleDown, at: path / "behavior" / "scaleDown"))
        let sync = positive(spec.syncPeriod, default: .seconds(5), at: path / "syncPeriod")
        guard issues.count == before else { return nil }
        return AutoscalingSettings(minReplicas: minimum, maxReplicas: maximum, syncPeriod: sync, targets: targets, behavior: behavior)
    }

    private mutating func compileRules(_ spec: ScalingRulesSpec?, default base: Autoscaling.ScalingRules, at path: SpecPath)
        -> Autoscaling.ScalingRules
    {
        guard let spec else { return base }
        var rules = base
        if let window = within(spec.stabilizationWindowSeconds, 0...3600, at: path / "stabilizationWindowSeconds") {
            rules.stabilizationWindowSeconds = window
        }
        if let select = spec.selectPolicy { rules.selectPolicy = select }
        if let policies = spec.policies {
            rules.policies = []
            for (index, policy) in policies.enumerated() {
                let here = path / "policies" / index
                guard let type = policy.type, let value = policy.value, value > 0, let period = policy.periodSeconds,
                    (1...1800).contains(period)
                else {
                    problem(here, "write {type: Pods or Percent, value: N > 0, periodSeconds: 1…1800}")
                    continue
                }
                rules.policies.append(Autoscaling.ScalingPolicy(type: type, value: value, periodSeconds: period))
            }
        }
        return rules
    }
}
