import Foundation
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
    /// Kubernetes' `Object` metric: a route's or a service's total requests per second.
    public var object: ObjectMetricSpec?
    /// Kubernetes' `External` metric: a series of a Prometheus text endpoint.
    public var external: ExternalMetricSpec?

    public static let exclusiveKeys = ExclusiveKeySet(["cpu", "requestsPerSecond", "inFlight", "object", "external"])
}

/// `{route: NAME, metric: requestsPerSecond, value: 200}` or `{service: NAME, …, averageValue: 50}`.
public struct ObjectMetricSpec: Decodable, Sendable {
    public var route: String?
    public var service: String?
    /// `requestsPerSecond`, the only one so far (and the default).
    public var metric: String?
    public var value: Double?
    public var averageValue: Double?
}

/// `{url: http://…/metrics, series: 'queue_depth{queue="jobs"}', averageValue: 30}`.
public struct ExternalMetricSpec: Decodable, Sendable {
    public var url: String?
    public var series: String?
    public var value: Double?
    public var averageValue: Double?
}

/// Where the live autoscaler reads an `Object` or `External` metric.
public enum MetricSource: Sendable, Hashable {
    /// Requests per second through a route, or to a service, of this gantry.
    case routeRequests(String)
    case serviceRequests(String)
    /// The sum of a series at a Prometheus text endpoint.
    case prometheus(host: String, port: Int, path: String, series: PrometheusSeries)
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
    /// Where each `Object` and `External` target's value comes from, by the target's metric name.
    public let sources: [String: MetricSource]
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
        var sources: [String: MetricSource] = [:]
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
            } else if let object = metric.object {
                compileObjectMetric(object, at: here / "object", targets: &targets, sources: &sources)
            } else if let external = metric.external {
                compileExternalMetric(external, at: here / "external", targets: &targets, sources: &sources)
            } else if let (name, target) = metric.requestsPerSecond.map({ ("requestsPerSecond", $0) }) ?? metric.inFlight.map({ ("inFlight", $0) }) {
                guard let value = target.averageValue, value > 0 else {
                    problem(here / name / "averageValue", "needs a value above 0")
                    continue
                }
                targets.append(.averageValue(metric: name, value: value))
            }
            // A metric of no kind (a misspelt key) was reported when the file was read.
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
        return AutoscalingSettings(
            minReplicas: minimum, maxReplicas: maximum, syncPeriod: sync, targets: targets, behavior: behavior, sources: sources)
    }

    /// Exactly one of `value` and `averageValue`, above zero.
    private mutating func quantity(value: Double?, averageValue: Double?, at path: SpecPath) -> Autoscaling.Quantity? {
        switch (value, averageValue) {
        case (let value?, nil) where value > 0: return .value(value)
        case (nil, let average?) where average > 0: return .averageValue(average)
        default:
            problem(path, "set one of value (the total) and averageValue (per replica), above 0")
            return nil
        }
    }

    private mutating func compileObjectMetric(
        _ spec: ObjectMetricSpec, at path: SpecPath, targets: inout [Autoscaling.Target], sources: inout [String: MetricSource]
    ) {
        let metric = spec.metric ?? "requestsPerSecond"
        if metric != "requestsPerSecond" { problem(path / "metric", "unknown metric \"\(metric)\": use requestsPerSecond") }
        let source: MetricSource
        switch (spec.route, spec.service) {
        case (let route?, nil): source = .routeRequests(route)
        case (nil, let service?): source = .serviceRequests(service)
        default:
            problem(path, "set one of route: NAME and service: NAME, the object whose requests are counted")
            return
        }
        guard let quantity = quantity(value: spec.value, averageValue: spec.averageValue, at: path) else { return }
        let name = spec.route.map { "\(metric){route=\"\($0)\"}" } ?? "\(metric){service=\"\(spec.service!)\"}"
        targets.append(.object(metric: name, target: quantity))
        sources[name] = source
    }

    private mutating func compileExternalMetric(
        _ spec: ExternalMetricSpec, at path: SpecPath, targets: inout [Autoscaling.Target], sources: inout [String: MetricSource]
    ) {
        guard let url = spec.url, url.hasPrefix("http://"), let parts = URLComponents(string: url), let host = parts.host else {
            problem(path / "url", "needs the http:// URL of a Prometheus text endpoint, e.g. http://127.0.0.1:9100/metrics")
            return
        }
        guard let text = spec.series, let series = PrometheusSeries(parsing: text) else {
            problem(path / "series", "needs a series as Prometheus writes it, e.g. queue_depth or queue_depth{queue=\"jobs\"}")
            return
        }
        guard let quantity = quantity(value: spec.value, averageValue: spec.averageValue, at: path) else { return }
        let name = series.description
        targets.append(.external(metric: name, target: quantity))
        sources[name] = .prometheus(
            host: host, port: parts.port ?? 80, path: (parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath)
                + (parts.percentEncodedQuery.map { "?\($0)" } ?? ""), series: series)
    }

    /// An `Object` metric names a route or service of the file: checked once both are compiled.
    mutating func checkObjectMetrics(_ services: [ServiceSettings], routes: [RouteRule]) {
        for service in services {
            for (_, source) in service.autoscaling?.sources ?? [:] {
                let path = SpecPath() / "services" / service.index / "autoscaling" / "metrics"
                switch source {
                case .routeRequests(let route) where !routes.contains(where: { $0.name == route }):
                    problem(path, "unknown route \"\(route)\"" + Suggestion.hint(for: route, among: routes.map(\.name)))
                case .serviceRequests(let name) where !services.contains(where: { $0.name == name }):
                    problem(path, "unknown service \"\(name)\"" + Suggestion.hint(for: name, among: services.map(\.name)))
                default:
                    break
                }
            }
        }
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
