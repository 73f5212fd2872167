import GantryConfig
import GantryCore
import Logging
import NIOCore
import Synchronization

/// The load balancer's active health checks, between whoever names a service's targets (the
/// pod supervisor's ready pods, the file's static endpoints) and the data plane: what reaches the
/// data plane is the targets that also pass the service's `healthCheck`. Services without one
/// pass straight through.
public final class HealthCheckedEndpoints: EndpointPublisher {
    private let inner: any EndpointPublisher
    private let checks: [String: HealthCheckSettings]
    private let events: EventRecorder
    private let runner: ProbeRunner

    private struct ServiceState {
        var targets: [EndpointAddress] = []
        var health: TargetHealth<EndpointAddress>
    }

    private let state: Mutex<[String: ServiceState]>

    public init(inner: any EndpointPublisher, services: [ServiceSettings], events: EventRecorder, group: any EventLoopGroup) {
        self.inner = inner
        self.events = events
        self.runner = ProbeRunner(group: group)
        var checks: [String: HealthCheckSettings] = [:]
        var state: [String: ServiceState] = [:]
        for service in services {
            guard let check = service.healthCheck else { continue }
            checks[service.name] = check
            state[service.name] = ServiceState(
                health: TargetHealth(healthyThreshold: check.healthyThreshold, unhealthyThreshold: check.unhealthyThreshold))
        }
        self.checks = checks
        self.state = Mutex(state)
    }

    public func publish(_ endpoints: [EndpointAddress], forService service: String) {
        guard checks[service] != nil else { return inner.publish(endpoints, forService: service) }
        // Published under the lock, so that a check finishing at the same time cannot publish an
        // older target list after this one.
        state.withLock { all in
            all[service]!.targets = endpoints
            all[service]!.health.retain(Set(endpoints))
            inner.publish(endpoints.filter(all[service]!.health.isHealthy), forService: service)
        }
    }

    public func settled() async { await inner.settled() }
    public func inFlight(_ endpoint: EndpointAddress) -> Int { inner.inFlight(endpoint) }
    public func requestCount(_ endpoint: EndpointAddress) -> Int { inner.requestCount(endpoint) }

    /// Each target's health, for the admin API. Empty for services without checks.
    public func targets(of service: String) -> [TargetStatus] {
        state.withLock { all in
            guard let entry = all[service] else { return [] }
            return entry.targets.map { target in
                let status = entry.health.status(of: target)
                return TargetStatus(address: target.description, healthy: status.healthy, lastFailure: status.lastFailure)
            }
        }
    }

    /// Checks every service's targets on its interval until cancelled.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for (service, check) in checks {
                group.addTask { await self.checkLoop(service, check) }
            }
        }
    }

    private func checkLoop(_ service: String, _ check: HealthCheckSettings) async {
        while !Task.isCancelled {
            let targets = state.withLock { $0[service]?.targets ?? [] }
            let results = await withTaskGroup(of: (EndpointAddress, String?).self) { group in
                for target in targets {
                    group.addTask { (target, await self.failure(of: target, check)) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            state.withLock { all in
                guard var entry = all[service] else { return }
                var changed = false
                for (target, failure) in results where entry.targets.contains(target) {
                    guard entry.health.record(target, passed: failure == nil, failure: failure) else { continue }
                    changed = true
                    if let failure {
                        events.record(.warning, "TargetUnhealthy", object: "service/\(service)", "\(target) failed \(check.unhealthyThreshold) health checks: \(failure)")
                    } else {
                        events.record(.normal, "TargetHealthy", object: "service/\(service)", "\(target) passed \(check.healthyThreshold) health checks")
                    }
                }
                all[service] = entry
                if changed { inner.publish(entry.targets.filter(entry.health.isHealthy), forService: service) }
            }
            try? await Task.sleep(for: check.interval)
        }
    }

    /// nil when the target passes; else why not.
    private func failure(of target: EndpointAddress, _ check: HealthCheckSettings) async -> String? {
        let port = check.port ?? target.port
        let result = await ProbeRunner.withTimeout(check.timeout) {
            try await self.runner.httpStatus(
                host: target.host, port: port, path: check.path, headers: [], timeout: check.timeout, userAgent: "gantry-health-check")
        }
        switch result {
        case .success(let status): return check.matcher.matches(status) ? nil : "status \(status), want \(check.matcher)"
        case .failure(let error): return "\(error)"
        case nil: return "timed out after \(check.timeout)"
        }
    }
}

/// One target of a service with health checks.
public struct TargetStatus: Sendable, Codable, Hashable {
    public let address: String
    public let healthy: Bool
    public let lastFailure: String?
}
