/// The inputs and outputs of the Horizontal Pod Autoscaler's decision (``HPACalculator``), as
/// plain values with times in seconds, so the live loop and `gantry autoscaler simulate` feed
/// the same function the same way.
public enum Autoscaling {
    /// What a metric should average per pod.
    public enum Target: Sendable, Hashable, Codable {
        /// CPU usage as a percentage of the pods' CPU request (`averageUtilization`).
        case cpuUtilization(percent: Double)
        /// A per-pod value, e.g. requests per second (`averageValue`).
        case averageValue(metric: String, value: Double)
        /// A value that describes another object than the pods (Kubernetes' `Object` metric): a
        /// route's or a service's total requests per second, read from ``Input/metricValues``.
        case object(metric: String, target: Quantity)
        /// A value from outside (Kubernetes' `External` metric): a series of a Prometheus
        /// endpoint, read from ``Input/metricValues``.
        case external(metric: String, target: Quantity)

        public var name: String {
            switch self {
            case .cpuUtilization: return "cpu"
            case .averageValue(let metric, _), .object(let metric, _), .external(let metric, _): return metric
            }
        }
    }

    /// An `Object` or `External` metric's target: the value itself (`Value`), or the value per
    /// replica (`AverageValue`). JSON: `{"value": 100}` or `{"averageValue": 20}`.
    public enum Quantity: Sendable, Hashable, Codable {
        case value(Double)
        case averageValue(Double)

        private enum CodingKeys: String, CodingKey {
            case value, averageValue
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            if let value = try container.decodeIfPresent(Double.self, forKey: .value) {
                self = .value(value)
            } else {
                self = .averageValue(try container.decode(Double.self, forKey: .averageValue))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            switch self {
            case .value(let value): try container.encode(value, forKey: .value)
            case .averageValue(let value): try container.encode(value, forKey: .averageValue)
            }
        }
    }

    /// One pod as the autoscaler sees it.
    public struct Pod: Sendable, Hashable, Codable {
        public var name: String
        public var ready: Bool
        /// Seconds; a pod that started less than `cpuInitializationPeriod` ago and is not ready
        /// does not count for CPU.
        public var started: Double
        /// Millicores requested (for CPU utilization).
        public var cpuRequest: Double?
        /// Metric samples by metric name: `cpu` in millicores used, others in their own unit.
        /// A missing sample means the pod has none.
        public var samples: [String: Double]
        /// Not running yet (starting, or waiting out a restart backoff): counted as unready.
        public var pending: Bool?
        /// Failed for good or crash-looping: left out of the calculation, not counted as missing.
        public var failed: Bool?
        /// Seconds: when the pod's readiness last changed (its Ready condition's
        /// `lastTransitionTime`). Default: `started`.
        public var readyTransition: Double?
        /// Seconds: when the samples were taken, and over how long a window (for CPU during the
        /// initialization period). Default: `now`, and no window.
        public var sampleTime: Double?
        public var sampleWindow: Double?

        public init(
            name: String, ready: Bool, started: Double, cpuRequest: Double?, samples: [String: Double], pending: Bool = false,
            failed: Bool = false, readyTransition: Double? = nil, sampleTime: Double? = nil, sampleWindow: Double? = nil
        ) {
            self.name = name
            self.ready = ready
            self.started = started
            self.cpuRequest = cpuRequest
            self.samples = samples
            self.pending = pending
            self.failed = failed
            self.readyTransition = readyTransition
            self.sampleTime = sampleTime
            self.sampleWindow = sampleWindow
        }
    }

    public enum PolicyType: String, Sendable, Hashable, Codable, CaseIterable {
        case pods = "Pods"
        case percent = "Percent"
    }

    public struct ScalingPolicy: Sendable, Hashable, Codable {
        public var type: PolicyType
        public var value: Int
        public var periodSeconds: Int

        public init(type: PolicyType, value: Int, periodSeconds: Int) {
            self.type = type
            self.value = value
            self.periodSeconds = periodSeconds
        }
    }

    public enum SelectPolicy: String, Sendable, Hashable, Codable, CaseIterable {
        case max = "Max"
        case min = "Min"
        case disabled = "Disabled"
    }

    public struct ScalingRules: Sendable, Hashable, Codable {
        public var stabilizationWindowSeconds: Int
        public var selectPolicy: SelectPolicy
        public var policies: [ScalingPolicy]

        public init(stabilizationWindowSeconds: Int, selectPolicy: SelectPolicy, policies: [ScalingPolicy]) {
            self.stabilizationWindowSeconds = stabilizationWindowSeconds
            self.selectPolicy = selectPolicy
            self.policies = policies
        }

        /// Kubernetes' default for scaling up: no stabilization, at most double or add 4 pods
        /// (whichever is more) every 15 s.
        public static let defaultScaleUp = ScalingRules(
            stabilizationWindowSeconds: 0, selectPolicy: .max,
            policies: [ScalingPolicy(type: .percent, value: 100, periodSeconds: 15), ScalingPolicy(type: .pods, value: 4, periodSeconds: 15)])
        /// Kubernetes' default for scaling down: the highest recommendation of the last 5
        /// minutes, any number of pods per 15 s.
        public static let defaultScaleDown = ScalingRules(
            stabilizationWindowSeconds: 300, selectPolicy: .max, policies: [ScalingPolicy(type: .percent, value: 100, periodSeconds: 15)])
    }

    public struct Behavior: Sendable, Hashable, Codable {
        public var scaleUp: ScalingRules
        public var scaleDown: ScalingRules

        public init(scaleUp: ScalingRules = .defaultScaleUp, scaleDown: ScalingRules = .defaultScaleDown) {
            self.scaleUp = scaleUp
            self.scaleDown = scaleDown
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                scaleUp: try container.decodeIfPresent(ScalingRules.self, forKey: .scaleUp) ?? .defaultScaleUp,
                scaleDown: try container.decodeIfPresent(ScalingRules.self, forKey: .scaleDown) ?? .defaultScaleDown)
        }
    }

    /// An earlier recommendation (before stabilization), kept for the stabilization windows.
    public struct Recommendation: Sendable, Hashable, Codable {
        public var time: Double
        public var replicas: Int

        public init(time: Double, replicas: Int) {
            self.time = time
            self.replicas = replicas
        }
    }

    /// An earlier scaling, kept for the rate policies: `change` pods added (up) or removed (down).
    public struct ScaleEvent: Sendable, Hashable, Codable {
        public var time: Double
        public var change: Int

        public init(time: Double, change: Int) {
            self.time = time
            self.change = change
        }
    }

    public struct Input: Sendable, Hashable, Codable {
        public var currentReplicas: Int
        public var minReplicas: Int
        public var maxReplicas: Int
        public var targets: [Target]
        public var pods: [Pod]
        public var behavior: Behavior
        public var recommendations: [Recommendation]
        public var scaleUpEvents: [ScaleEvent]
        public var scaleDownEvents: [ScaleEvent]
        public var now: Double
        /// Default 0.1.
        public var tolerance: Double
        /// Kubernetes' `--horizontal-pod-autoscaler-cpu-initialization-period`, default 300 s.
        public var cpuInitializationPeriod: Double
        /// Kubernetes' `--horizontal-pod-autoscaler-initial-readiness-delay`, default 30 s.
        public var initialReadinessDelay: Double
        /// The current value of each `Object` and `External` metric, by its name.
        public var metricValues: [String: Double]

        public init(
            currentReplicas: Int, minReplicas: Int, maxReplicas: Int, targets: [Target], pods: [Pod], behavior: Behavior = Behavior(),
            recommendations: [Recommendation] = [], scaleUpEvents: [ScaleEvent] = [], scaleDownEvents: [ScaleEvent] = [],
            now: Double, tolerance: Double = 0.1, cpuInitializationPeriod: Double = 300, initialReadinessDelay: Double = 30,
            metricValues: [String: Double] = [:]
        ) {
            self.currentReplicas = currentReplicas
            self.minReplicas = minReplicas
            self.maxReplicas = maxReplicas
            self.targets = targets
            self.pods = pods
            self.behavior = behavior
            self.recommendations = recommendations
            self.scaleUpEvents = scaleUpEvents
            self.scaleDownEvents = scaleDownEvents
            self.now = now
            self.tolerance = tolerance
            self.cpuInitializationPeriod = cpuInitializationPeriod
            self.initialReadinessDelay = initialReadinessDelay
            self.metricValues = metricValues
        }

        /// Everything but the replica counts, targets, pods and `now` may be left out and takes
        /// Kubernetes' defaults.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                currentReplicas: try container.decode(Int.self, forKey: .currentReplicas),
                minReplicas: try container.decodeIfPresent(Int.self, forKey: .minReplicas) ?? 1,
                maxReplicas: try container.decode(Int.self, forKey: .maxReplicas),
                targets: try container.decode([Target].self, forKey: .targets),
                pods: try container.decode([Pod].self, forKey: .pods),
                behavior: try container.decodeIfPresent(Behavior.self, forKey: .behavior) ?? Behavior(),
                recommendations: try container.decodeIfPresent([Recommendation].self, forKey: .recommendations) ?? [],
                scaleUpEvents: try container.decodeIfPresent([ScaleEvent].self, forKey: .scaleUpEvents) ?? [],
                scaleDownEvents: try container.decodeIfPresent([ScaleEvent].self, forKey: .scaleDownEvents) ?? [],
                now: try container.decode(Double.self, forKey: .now),
                tolerance: try container.decodeIfPresent(Double.self, forKey: .tolerance) ?? 0.1,
                cpuInitializationPeriod: try container.decodeIfPresent(Double.self, forKey: .cpuInitializationPeriod) ?? 300,
                initialReadinessDelay: try container.decodeIfPresent(Double.self, forKey: .initialReadinessDelay) ?? 30,
                metricValues: try container.decodeIfPresent([String: Double].self, forKey: .metricValues) ?? [:])
        }
    }

    /// What one metric proposed.
    public struct Proposal: Sendable, Hashable, Codable {
        public var metric: String
        /// nil when the metric had no usable samples.
        public var replicas: Int?
        /// The per-pod average over pods with samples, and the target.
        public var current: Double?
        public var target: Double
        public var note: String
        /// For a per-pod metric, how its pods were grouped (Kubernetes' `groupPods`): with a
        /// usable sample, unready (pending, or a CPU sample not to trust yet), without a sample,
        /// and left out (failed).
        public var ready: [String]?
        public var unready: [String]?
        public var missing: [String]?
        public var ignored: [String]?

        public init(metric: String, replicas: Int?, current: Double?, target: Double, note: String) {
            self.metric = metric
            self.replicas = replicas
            self.current = current
            self.target = target
            self.note = note
        }
    }

    public struct Decision: Sendable, Hashable, Codable {
        public var currentReplicas: Int
        public var desiredReplicas: Int
        /// The replica count the metrics asked for, before stabilization and limits.
        public var recommendedReplicas: Int
        /// e.g. "requestsPerSecond 412/50 per pod".
        public var reason: String
        /// The limits that changed the outcome: "ScaleUpStabilized", "ScaleUpLimit",
        /// "TooManyReplicas", "ScaleDownStabilized", "ScaleDownLimit", "TooFewReplicas",
        /// "MetricsUnavailable".
        public var limits: [String]
        public var proposals: [Proposal]
        /// To remember for the next decision's stabilization windows.
        public var recommendationToRecord: Recommendation?
    }
}
