import GantryConfig
import GantryCore
import GantryTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The load balancer's active health checks, between whoever names a service's targets (the
/// pod supervisor's ready pods, the file's static endpoints) and the data plane: what reaches the
/// data plane is the targets that also pass the service's `healthCheck`. Services without one
/// pass straight through.
public final class HealthCheckedEndpoints: EndpointPublisher {
    private let inner: any EndpointPublisher
    private let events: EventRecorder
    private let runner: ProbeRunner

    private struct ServiceState {
        var check: HealthCheckSettings
        var targets: [EndpointAddress] = []
        var health: TargetHealth<EndpointAddress>

        init(check: HealthCheckSettings, targets: [EndpointAddress] = []) {
            self.check = check
            self.targets = targets
            self.health = TargetHealth(healthyThreshold: check.healthyThreshold, unhealthyThreshold: check.unhealthyThreshold)
        }
    }

    /// The services with checks.
    private let state: NIOLockedValueBox<[String: ServiceState]>
    /// Each service's check loop, once ``run()`` has started them.
    private let loops = NIOLockedValueBox<(running: Bool, tasks: [String: Task<Void, Never>])>((false, [:]))

    public init(inner: any EndpointPublisher, services: [ServiceSettings], events: EventRecorder, group: any EventLoopGroup) {
        self.inner = inner
        self.events = events
        self.runner = ProbeRunner(group: group)
        var state: [String: ServiceState] = [:]
        for service in services {
            guard let check = service.healthCheck else { continue }
            state[service.name] = ServiceState(check: check)
        }
        self.state = NIOLockedValueBox(state)
    }

    public func publish(_ endpoints: [EndpointAddress], forService service: String) {
        // Published under the lock, so that a check finishing at the same time cannot publish an
        // older target list after this one.
        state.withLockedValue { all in
            guard all[service] != nil else { return inner.publish(endpoints, forService: service) }
            all[service]!.targets = endpoints
            all[service]!.health.retain(Set(endpoints))
            inner.publish(endpoints.filter(all[service]!.health.isHealthy), forService: service)
        }
    }

    public func settled() async { await inner.settled() }
    public func inFlight(_ endpoint: EndpointAddress) -> Int { inner.inFlight(endpoint) }
    public func closeTunnels(to endpoint: EndpointAddress) async { await inner.closeTunnels(to: endpoint) }
    public func requestCount(_ endpoint: EndpointAddress) -> Int { inner.requestCount(endpoint) }

    /// Each target's health, for the admin API. Empty for services without checks.
    public func targets(of service: String) -> [TargetStatus] {
        state.withLockedValue { all in
            guard let entry = all[service] else { return [] }
            return entry.targets.map { target in
                let status = entry.health.status(of: target)
                return TargetStatus(address: target.description, healthy: status.healthy, lastFailure: status.lastFailure)
            }
        }
    }

    /// The checks of a new configuration: a new or changed check starts over with every target
    /// healthy until it fails; a service that no longer has one passes all its targets again.
    public func update(services: [ServiceSettings]) {
        let checks = Dictionary(services.compactMap { service in service.healthCheck.map { (service.name, $0) } }, uniquingKeysWith: { a, _ in a })
        var restarted: [String] = []
        state.withLockedValue { all in
            for (name, entry) in all where checks[name] == nil {
                all[name] = nil
                inner.publish(entry.targets, forService: name)
            }
            for (name, check) in checks where all[name]?.check != check {
                all[name] = ServiceState(check: check, targets: all[name]?.targets ?? [])
                inner.publish(all[name]!.targets, forService: name)
                restarted.append(name)
            }
        }
        loops.withLockedValue { loops in
            for (name, task) in loops.tasks where checks[name] == nil || restarted.contains(name) {
                task.cancel()
                loops.tasks[name] = nil
            }
            guard loops.running else { return }
            for name in restarted { loops.tasks[name] = Task { await self.checkLoop(name) } }
        }
    }

    /// Checks every service's targets on its interval until cancelled.
    public func run() async {
        let names = state.withLockedValue { Array($0.keys) }
        loops.withLockedValue { loops in
            loops.running = true
            for name in names { loops.tasks[name] = Task { await self.checkLoop(name) } }
        }
        await withTaskCancellationHandler {
            while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
        } onCancel: {
            loops.withLockedValue { loops in
                loops.running = false
                for task in loops.tasks.values { task.cancel() }
                loops.tasks = [:]
            }
        }
    }

    private func checkLoop(_ service: String) async {
        while !Task.isCancelled, let check = state.withLockedValue({ $0[service]?.check }) {
            let targets = state.withLockedValue { $0[service]?.targets ?? [] }
            let results = await withTaskGroup(of: (EndpointAddress, String?).self) { group in
                for target in targets {
                    group.addTask { (target, await self.failure(of: target, check)) }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            if Task.isCancelled { return }
            state.withLockedValue { all in
                guard var entry = all[service], entry.check == check else { return }
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
        if let service = check.grpcService {
            let result = await ProbeRunner.withTimeout(check.timeout) {
                try await HTTP2Check(group: self.runner.group).grpcServingStatus(
                    host: target.host, port: port, service: service, timeout: check.timeout, tls: check.tls)
            }
            switch result {
            case .success(let status): return status == GRPC.serving ? nil : "gRPC health \(HTTP2Check.describe(status)), want SERVING"
            case .failure(let error): return check.tls == nil ? "\(error)" : TLSClientContext.explain(error)
            case nil: return "timed out after \(check.timeout)"
            }
        }
        let result = await ProbeRunner.withTimeout(check.timeout) {
            if check.http2 {
                // The service's endpoints speak only HTTP/2: so does its check.
                return try await HTTP2Check(group: self.runner.group).status(
                    host: target.host, port: port, path: check.path, timeout: check.timeout, tls: check.tls)
            }
            return try await self.runner.httpStatus(
                host: target.host, port: port, path: check.path, headers: [], timeout: check.timeout, userAgent: "gantry-health-check",
                tls: check.tls)
        }
        switch result {
        case .success(let status): return check.matcher.matches(status) ? nil : "status \(status), want \(check.matcher)"
        case .failure(let error): return check.tls == nil ? "\(error)" : TLSClientContext.explain(error)
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
