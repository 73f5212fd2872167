import Foundation
import GantryConfig
import GantryCore
import GantryHTTP
import GantryPods
import Logging

/// Requests so far through each route and to each service, as the data plane counts them.
public struct RequestTotals: Sendable {
    public var routes: [String: Int]
    public var services: [String: Int]

    public init(routes: [String: Int] = [:], services: [String: Int] = [:]) {
        self.routes = routes
        self.services = services
    }
}

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
    /// Requests so far by route and by service, for `Object` metrics.
    private let requestTotals: @Sendable () async -> RequestTotals
    /// The last reading of each `Object` metric's counter, for its rate.
    private var previousTotals: [String: (time: ContinuousClock.Instant, count: Int)] = [:]
    private let logger: Logger
    private let clock = ContinuousClock()
    private let started: ContinuousClock.Instant
    private let startedAt = Date()

    private var recommendations: [Autoscaling.Recommendation] = []
    private var scaleUpEvents: [Autoscaling.ScaleEvent] = []
    private var scaleDownEvents: [Autoscaling.ScaleEvent] = []
    private var previous: [String: (time: ContinuousClock.Instant, cpuSeconds: Double, requests: Int)] = [:]
    public private(set) var lastDecision: Autoscaling.Decision?

    public init(
        service: ServiceSettings, settings: AutoscalingSettings, supervisor: PodSupervisor, publisher: any EndpointPublisher,
        requestTotals: @escaping @Sendable () async -> RequestTotals = { RequestTotals() }, logger: Logger
    ) {
        self.service = service.name
        self.requestTotals = requestTotals
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
            scaleDownEvents: scaleDownEvents, now: now, metricValues: await metricValues())
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
            var window: Double?
            if let cpu, let before = previous[status.name] {
                let elapsed = Double((now - before.time).components.attoseconds) / 1e18 + Double((now - before.time).components.seconds)
                window = elapsed
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
                    cpuRequest: cpuRequestMillicores, samples: samples, pending: status.phase == "Pending",
                    failed: status.phase == "Failed" || status.reason == "CrashLoopBackOff",
                    readyTransition: status.readyTransition?.timeIntervalSince(startedAt), sampleTime: seconds(now), sampleWindow: window))
        }
        previous = previous.filter { seen.contains($0.key) }
        return pods
    }

    /// The current value of each `Object` and `External` metric: request rates from two
    /// readings of gantry's counters (none at the first), and the sum of a Prometheus series.
    /// A metric that cannot be read has no value, as in Kubernetes.
    private func metricValues() async -> [String: Double] {
        guard !settings.sources.isEmpty else { return [:] }
        var values: [String: Double] = [:]
        var totals: RequestTotals?
        let now = clock.now
        for (name, source) in settings.sources {
            switch source {
            case .routeRequests(let object), .serviceRequests(let object):
                if totals == nil { totals = await requestTotals() }
                let counts = if case .routeRequests = source { totals?.routes } else { totals?.services }
                let count = counts?[object] ?? 0
                if let before = previousTotals[name] {
                    let elapsed = (now - before.time) / .seconds(1)
                    if elapsed > 0 { values[name] = Double(max(0, count - before.count)) / elapsed }
                }
                previousTotals[name] = (now, count)
            case .prometheus(let host, let port, let path, let series):
                do {
                    let answer = try await SimpleHTTPClient.request(.GET, host: host, port: port, path: path, timeout: .seconds(2))
                    guard answer.status == 200 else { throw ScrapeFailure(description: "HTTP \(answer.status)") }
                    if let value = series.value(in: String(decoding: answer.body, as: UTF8.self)) { values[name] = value }
                } catch {
                    logger.warning("external metric unavailable", metadata: ["service": "\(service)", "series": "\(series)", "error": "\(error)"])
                }
            }
        }
        previousTotals = previousTotals.filter { settings.sources[$0.key] != nil }
        return values
    }

    private struct ScrapeFailure: Error, CustomStringConvertible {
        let description: String
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
