import Foundation
import GantryConfig
import GantryCore
import GantryPods
import Logging

/// The Horizontal Pod Autoscaler of one service: every sync period it samples each pod's CPU
/// (whole process group, against its CPU request), requests per second and requests in flight,
/// asks ``HPACalculator`` for a decision, and scales the service when the decision differs.
/// It keeps what the decision needs from the past: recent recommendations (stabilization
/// windows) and recent scale events (rate policies).
public actor Autoscaler {
    private let service: String
    private var settings: AutoscalingSettings
    private var cpuRequestMillicores: Double?
    private let supervisor: PodSupervisor
    private let publisher: any EndpointPublisher
    private let logger: Logger
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private let startedAt = Date()

    private var recommendations: [Autoscaling.Recommendation] = []
    private var scaleUpEvents: [Autoscaling.ScaleEvent] = []
    private var scaleDownEvents: [Autoscaling.ScaleEvent] = []
    private var previous: [String: (time: ContinuousClock.Instant, cpuSeconds: Double, requests: Int)] = [:]
    public private(set) var lastDecision: Autoscaling.Decision?

    public init(service: ServiceSettings, settings: AutoscalingSettings, supervisor: PodSupervisor, publisher: any EndpointPublisher, logger: Logger) {
        self.service = service.name
        self.settings = settings
        self.cpuRequestMillicores = service.pods?.cpuRequestMillicores.map(Double.init)
        self.supervisor = supervisor
        self.publisher = publisher
        self.logger = logger
        self.started = clock.now
    }

    /// New settings from a new configuration, used from the next sync on; what the decisions
    /// remember of the past (recommendations, scale events) stays.
    public func update(service: ServiceSettings, settings: AutoscalingSettings) {
        self.settings = settings
        self.cpuRequestMillicores = service.pods?.cpuRequestMillicores.map(Double.init)
    }

    /// Runs until cancelled.
    public func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: settings.syncPeriod)
            if Task.isCancelled { return }
            await sync()
        }
    }

    /// One sample and decision.
    public func sync() async {
        let statuses = await supervisor.podStatuses().filter { $0.service == service }
        guard let current = await supervisor.serviceStatus(service).replicas else { return }
        let pods = sample(statuses)
        let now = seconds(clock.now)
        let input = Autoscaling.Input(
            currentReplicas: current, minReplicas: settings.minReplicas, maxReplicas: settings.maxReplicas, targets: settings.targets,
            pods: pods, behavior: settings.behavior, recommendations: recommendations, scaleUpEvents: scaleUpEvents,
            scaleDownEvents: scaleDownEvents, now: now)
        let decision = HPACalculator.decide(input)
        lastDecision = decision
        if let record = decision.recommendationToRecord { recommendations.append(record) }
        forgetOld(now: now)
        guard decision.desiredReplicas != current else { return }
        let limits = decision.limits.isEmpty ? "" : " (limited: \(decision.limits.joined(separator: ", ")))"
        let message = "\(service) \(current) → \(decision.desiredReplicas): \(decision.reason)\(limits)"
        do {
            try await supervisor.scale(service, replicas: decision.desiredReplicas, reason: "SuccessfulRescale", message: message)
            if decision.desiredReplicas > current {
                scaleUpEvents.append(Autoscaling.ScaleEvent(time: now, change: decision.desiredReplicas - current))
            } else {
                scaleDownEvents.append(Autoscaling.ScaleEvent(time: now, change: current - decision.desiredReplicas))
            }
        } catch {
            logger.warning("autoscaler could not scale", metadata: ["service": "\(service)", "error": "\(error)"])
        }
    }

    /// Each pod with its samples: rates need two readings, so a pod's first sync has none (it
    /// counts as missing, as a pod without metrics does in Kubernetes).
    private func sample(_ statuses: [PodStatus]) -> [Autoscaling.Pod] {
        let usage = ProcessGroupUsage.read(groups: Set(statuses.compactMap(\.pid)))
        let now = clock.now
        var seen: Set<String> = []
        var pods: [Autoscaling.Pod] = []
        for status in statuses where status.reason != "Terminating" {
            seen.insert(status.name)
            var samples: [String: Double] = [:]
            let endpoint = EndpointAddress(parsing: status.address)
            let requests = endpoint.map(publisher.requestCount) ?? 0
            let cpu = status.pid.flatMap { usage[$0]?.cpuSeconds }
            if let cpu, let before = previous[status.name] {
                let elapsed = Double((now - before.time).components.attoseconds) / 1e18 + Double((now - before.time).components.seconds)
                if elapsed > 0 {
                    samples["cpu"] = max(0, cpu - before.cpuSeconds) * 1000 / elapsed
                    samples["requestsPerSecond"] = Double(max(0, requests - before.requests)) / elapsed
                }
            }
            if status.ready, let endpoint { samples["inFlight"] = Double(publisher.inFlight(endpoint)) }
            if let cpu { previous[status.name] = (now, cpu, requests) }
            pods.append(
                Autoscaling.Pod(
                    name: status.name, ready: status.ready, started: status.created.timeIntervalSince(startedAt),
                    cpuRequest: cpuRequestMillicores, samples: samples, pending: status.phase == "Pending"))
        }
        previous = previous.filter { seen.contains($0.key) }
        return pods
    }

    private func forgetOld(now: Double) {
        let window = Double(max(settings.behavior.scaleUp.stabilizationWindowSeconds, settings.behavior.scaleDown.stabilizationWindowSeconds))
        recommendations.removeAll { $0.time <= now - window - 1 }
        let period = Double((settings.behavior.scaleUp.policies + settings.behavior.scaleDown.policies).map(\.periodSeconds).max() ?? 0)
        scaleUpEvents.removeAll { $0.time <= now - period - 1 }
        scaleDownEvents.removeAll { $0.time <= now - period - 1 }
    }

    private func seconds(_ instant: ContinuousClock.Instant) -> Double {
        let (whole, fraction) = (instant - started).components
        return Double(whole) + Double(fraction) / 1e18
    }
}
