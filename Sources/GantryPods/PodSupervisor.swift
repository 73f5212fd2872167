import Foundation
import GantryConfig
import GantryCore
import Logging
import NIOCore

public enum SupervisorError: Error, CustomStringConvertible, Equatable {
    case unknownService(String)
    case noPods(String)
    case invalidReplicas(Int)

    public var description: String {
        switch self {
        case .unknownService(let name): return "no service named \"\(name)\""
        case .noPods(let name): return "service \"\(name)\" has static endpoints, not pods"
        case .invalidReplicas(let count): return "replicas must be between 0 and 1000, not \(count)"
        }
    }
}

/// Runs every service's pods as the kubelet and a ReplicaSet would: keeps the desired number
/// running, probes them, restarts them per `restartPolicy` with CrashLoopBackOff, publishes
/// the ready ones as the service's endpoints, and drains a pod before stopping it.
///
/// Decisions about one pod are ``PodLifecycle``'s (pure); this actor does the I/O around them.
public actor PodSupervisor {
    private final class Pod {
        let name: String
        let service: String
        let address: String
        let port: Int
        let logPath: String
        let created = Date()
        let template: PodTemplate
        let environment: [String: String]
        var lifecycle: PodLifecycle
        var pid: pid_t?
        var run: Task<Void, Never>?
        var probes: [Task<Void, Never>] = []
        var finished = false

        init(name: String, service: String, address: String, template: PodTemplate, logPath: String, environment: [String: String]) {
            self.name = name
            self.service = service
            self.address = address
            self.port = template.port
            self.template = template
            self.logPath = logPath
            self.environment = environment
            lifecycle = PodLifecycle(
                restartPolicy: template.restartPolicy, startupProbe: template.startupProbe,
                readinessProbe: template.readinessProbe, livenessProbe: template.livenessProbe, backoff: template.restartBackoff)
        }

        var endpoint: EndpointAddress { EndpointAddress(host: address, port: port) }
    }

    private struct Service {
        let name: String
        let template: PodTemplate
        var replicas: Int
        var pods: [String] = []
        var rollingOut = false
    }

    private var services: [String: Service] = [:]
    private let serviceOrder: [String]
    private var pods: [String: Pod] = [:]
    private let clusterIPs: [String: String]
    private let serviceEnvironment: [String: String]
    private let publisher: any EndpointPublisher
    public nonisolated let events: EventRecorder
    private let probeRunner: ProbeRunner
    private let addresses = LoopbackAddresses(blocks: 100...199)
    private let logDirectory: String
    private let ledger: ProcessLedger
    private let logger: Logger
    private var stopping = false
    private var random = SystemRandomNumberGenerator()

    /// - Parameter clusterIPs: `host:port` of each service's virtual address, by service name.
    public init(
        snapshot: RuntimeSnapshot, clusterIPs: [String: String], publisher: any EndpointPublisher, events: EventRecorder,
        group: any EventLoopGroup, logger: Logger
    ) {
        var services: [String: Service] = [:]
        var order: [String] = []
        for settings in snapshot.services {
            order.append(settings.name)
            if let template = settings.pods {
                services[settings.name] = Service(name: settings.name, template: template, replicas: template.replicas)
            }
        }
        self.services = services
        self.serviceOrder = order
        self.clusterIPs = clusterIPs
        self.serviceEnvironment = Self.serviceEnvironment(clusterIPs)
        self.publisher = publisher
        self.events = events
        self.probeRunner = ProbeRunner(group: group)
        // Absolute, so `gantry logs` finds the files from any directory.
        let state = snapshot.stateDirectory.hasPrefix("/")
            ? snapshot.stateDirectory : FileManager.default.currentDirectoryPath + "/" + snapshot.stateDirectory
        self.logDirectory = state + "/logs"
        self.ledger = ProcessLedger(stateDirectory: state)
        self.logger = logger
    }

    /// Kubernetes' service discovery variables: `APP_SERVICE_SERVICE_HOST=127.0.10.2`,
    /// `APP_SERVICE_SERVICE_PORT=8080` for every service with a cluster IP.
    static func serviceEnvironment(_ clusterIPs: [String: String]) -> [String: String] {
        var environment: [String: String] = [:]
        for (service, hostPort) in clusterIPs {
            guard let colon = hostPort.lastIndex(of: ":") else { continue }
            let prefix = service.uppercased().replacingOccurrences(of: "-", with: "_")
            environment["\(prefix)_SERVICE_HOST"] = String(hostPort[..<colon])
            environment["\(prefix)_SERVICE_PORT"] = String(hostPort[hostPort.index(after: colon)...])
        }
        return environment
    }

    // MARK: Control

    /// Stops what an earlier gantry on this state directory left running, then creates every
    /// service's pods.
    public func start() async throws {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        await stopLeftovers()
        for name in serviceOrder where services[name] != nil { reconcile(name) }
    }

    /// Pods of a gantry that died without stopping them: SIGTERM, then SIGKILL after a grace
    /// period (they have no clients left to drain).
    private func stopLeftovers() async {
        let groups = ledger.leftovers()
        guard !groups.isEmpty else { return }
        for group in groups {
            events.record(.warning, "Orphaned", object: "process/\(group)", "left by a gantry that stopped without stopping its pods; terminating")
            PodProcess.signalGroup(group, SIGTERM)
        }
        let deadline = ContinuousClock.now + Self.leftoverGracePeriod
        while ContinuousClock.now < deadline, groups.contains(where: { ProcessLedger.startTime(of: $0) != nil }) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for group in groups { PodProcess.signalGroup(group, SIGKILL) }
    }

    static let leftoverGracePeriod = Duration.seconds(5)

    /// - Parameters:
    ///   - reason: the event's reason, e.g. `SuccessfulRescale` for the autoscaler.
    public func scale(_ service: String, replicas: Int, reason: String = "ScalingReplicaSet", message: String? = nil) throws {
        guard services[service] != nil else { throw error(for: service) }
        guard (0...1000).contains(replicas) else { throw SupervisorError.invalidReplicas(replicas) }
        let old = services[service]!.replicas
        services[service]!.replicas = replicas
        events.record(.normal, reason, object: "service/\(service)", message ?? "scaled from \(old) to \(replicas) replicas")
        reconcile(service)
    }

    /// Replaces every pod of the service, one at a time: a new pod first, then, once it is
    /// ready, the old one drains and stops (maxSurge 1, maxUnavailable 0), so capacity never
    /// drops. Returns at once; the rollout goes on in the background.
    public func rolloutRestart(_ service: String) throws {
        guard let state = services[service] else { throw error(for: service) }
        guard !state.rollingOut else { return }
        services[service]!.rollingOut = true
        events.record(.normal, "RolloutRestart", object: "service/\(service)", "restarting \(state.pods.count) pods")
        let old = state.pods
        Task { await self.roll(service, replacing: old) }
    }

    /// Drains and stops every pod, all services at once.
    public func shutdown() async {
        stopping = true
        await withTaskGroup(of: Void.self) { group in
            for name in pods.keys { group.addTask { await self.terminate(name) } }
        }
        ledger.remove()
    }

    public func podStatuses() -> [PodStatus] {
        let usage = ProcessGroupUsage.read(groups: Set(pods.values.compactMap(\.pid)))
        return pods.values.sorted { ($0.service, $0.created, $0.name) < ($1.service, $1.created, $1.name) }.map { pod in
            PodStatus(
                name: pod.name, service: pod.service, phase: pod.lifecycle.phase.rawValue, reason: pod.lifecycle.reason,
                ready: pod.lifecycle.ready, restarts: pod.lifecycle.restarts, created: pod.created,
                address: "\(pod.address):\(pod.port)", pid: pod.pid, inFlight: publisher.inFlight(pod.endpoint),
                lastExitCode: pod.lifecycle.lastExitCode, log: pod.logPath, memoryBytes: pod.pid.flatMap { usage[$0]?.residentBytes })
        }
    }

    public func serviceStatus(_ name: String) -> (clusterIP: String?, replicas: Int?) {
        (clusterIPs[name], services[name]?.replicas)
    }

    public func logPath(ofPod name: String) -> String? { pods[name]?.logPath }

    private func error(for service: String) -> SupervisorError {
        serviceOrder.contains(service) ? .noPods(service) : .unknownService(service)
    }

    // MARK: Replica sets

    private func reconcile(_ name: String) {
        guard let service = services[name], !stopping, !service.rollingOut else { return }
        let live = service.pods.compactMap { pods[$0] }.filter { !$0.lifecycle.terminating }
        if live.count < service.replicas {
            for _ in live.count..<service.replicas { createPod(for: name) }
        } else if live.count > service.replicas {
            // As a ReplicaSet: not-ready pods go first, then the newest.
            let victims = live.sorted { a, b in
                a.lifecycle.ready != b.lifecycle.ready ? !a.lifecycle.ready : a.created > b.created
            }.prefix(live.count - service.replicas)
            for pod in victims { Task { await self.terminate(pod.name) } }
        }
    }

    @discardableResult
    private func createPod(for serviceName: String) -> String? {
        guard let service = services[serviceName] else { return nil }
        var name = PodName.generate(for: serviceName, using: &random)
        while pods[name] != nil { name = PodName.generate(for: serviceName, using: &random) }
        guard let address = addresses.allocate(port: service.template.port) else {
            events.record(.warning, "FailedCreate", object: "service/\(serviceName)", "no free loopback address for port \(service.template.port)")
            return nil
        }
        var environment = serviceEnvironment
        environment["PORT"] = "\(service.template.port)"
        environment["POD_IP"] = address
        environment["POD_NAME"] = name
        environment["HOSTNAME"] = name
        environment["SERVICE_NAME"] = serviceName
        for variable in service.template.env { environment[variable.name] = variable.value }
        let pod = Pod(
            name: name, service: serviceName, address: address, template: service.template,
            logPath: "\(logDirectory)/\(name).log", environment: environment)
        pods[name] = pod
        services[serviceName]!.pods.append(name)
        events.record(.normal, "Scheduled", object: "pod/\(name)", "assigned \(address):\(pod.port)")
        pod.run = Task { await self.run(name) }
        return name
    }

    private func roll(_ service: String, replacing old: [String]) async {
        for oldName in old {
            guard !stopping, let newName = createPod(for: service) else { break }
            let deadline = ContinuousClock.now + .seconds(600)  // Kubernetes' progressDeadlineSeconds
            while !stopping, ContinuousClock.now < deadline, let pod = pods[newName], !pod.lifecycle.ready {
                try? await Task.sleep(for: .milliseconds(50))
            }
            guard pods[newName]?.lifecycle.ready == true else {
                events.record(.warning, "ProgressDeadlineExceeded", object: "service/\(service)", "\(newName) did not become ready")
                break
            }
            await terminate(oldName)
        }
        services[service]?.rollingOut = false
        events.record(.normal, "RolloutComplete", object: "service/\(service)", "rollout restart finished")
        reconcile(service)
    }

    // MARK: One pod

    private func run(_ name: String) async {
        while let pod = pods[name] {
            let launch = PodProcess.Launch(
                executable: pod.template.command[0] == "gantry" ? PodProcess.currentExecutable : pod.template.command[0],
                arguments: Array(pod.template.command.dropFirst()) + pod.template.args, environment: pod.environment,
                workingDirectory: pod.template.workingDir, logPath: pod.logPath)
            let outcome = await PodProcess.run(launch) { pid in await self.started(name, pid: pid) }
            switch ended(name, outcome) {
            case .restart(let delay):
                if delay > .zero { try? await Task.sleep(for: delay) }
                if pods[name]?.lifecycle.terminating ?? true {
                    finish(name)
                    return
                }
                events.record(.normal, "Restarting", object: "pod/\(name)", "starting again")
            case .none, .kill, .stop:
                finish(name)
                return
            }
        }
    }

    private func started(_ name: String, pid: pid_t) {
        guard let pod = pods[name] else { return }
        pod.pid = pid
        ledger.record(pods.values.compactMap(\.pid))
        pod.lifecycle.processStarted(at: .now)
        events.record(.normal, "Started", object: "pod/\(name)", "process \(pid)")
        if pod.lifecycle.terminating {
            PodProcess.signalGroup(pid, SIGTERM)
            return
        }
        let template = pod.template
        for (kind, probe) in [(ProbeKind.startup, template.startupProbe), (.readiness, template.readinessProbe), (.liveness, template.livenessProbe)] {
            guard let probe else { continue }
            pod.probes.append(Task { await self.probeLoop(name, kind: kind, probe: probe) })
        }
        publish(pod.service)
    }

    private func ended(_ name: String, _ outcome: PodProcess.Outcome) -> PodLifecycle.Action {
        guard let pod = pods[name] else { return .stop }
        for probe in pod.probes { probe.cancel() }
        pod.probes = []
        pod.pid = nil
        ledger.record(pods.values.compactMap(\.pid))
        let wasReady = pod.lifecycle.ready
        let action: PodLifecycle.Action
        switch outcome {
        case .exited(let code):
            action = pod.lifecycle.processExited(code: code, at: .now)
            let kind: PodEvent.Kind = code == 0 || pod.lifecycle.terminating ? .normal : .warning
            events.record(kind, "Exited", object: "pod/\(name)", "exit code \(code)")
        case .failedToStart(let why):
            action = pod.lifecycle.startFailed(at: .now)
            events.record(.warning, "Failed", object: "pod/\(name)", why)
        }
        if case .restart(let delay) = action, delay > .zero {
            events.record(.warning, "BackOff", object: "pod/\(name)", "restarting in \(delay)")
        }
        if wasReady { publish(pod.service) }
        return action
    }

    /// The pod leaves for good: its address is released and a ReplicaSet replaces it.
    private func finish(_ name: String) {
        guard let pod = pods[name] else { return }
        pod.finished = true
        if pod.lifecycle.terminating || pod.template.restartPolicy == .always {
            pods[name] = nil
            services[pod.service]?.pods.removeAll { $0 == name }
            addresses.release(pod.address)
            events.record(.normal, "Deleted", object: "pod/\(name)", "")
            reconcile(pod.service)
        }
    }

    private func probeLoop(_ name: String, kind: ProbeKind, probe: Probe) async {
        try? await Task.sleep(for: probe.initialDelay)
        while !Task.isCancelled, let pod = pods[name] {
            if pod.lifecycle.runs(kind) {
                let success = await probeRunner.check(probe, host: pod.address, environment: pod.environment)
                if Task.isCancelled { return }
                probed(name, kind: kind, success: success)
            }
            try? await Task.sleep(for: probe.period)
        }
    }

    private func probed(_ name: String, kind: ProbeKind, success: Bool) {
        guard let pod = pods[name] else { return }
        let wasReady = pod.lifecycle.ready
        let action = pod.lifecycle.probed(kind, success: success)
        if !success { events.record(.warning, "Unhealthy", object: "pod/\(name)", "\(kind.rawValue) probe failed") }
        if case .kill(let reason) = action {
            events.record(.warning, "Killing", object: "pod/\(name)", "\(reason): restarting the container")
            stopProcess(pod, grace: pod.template.terminationGracePeriod)
        }
        if wasReady != pod.lifecycle.ready {
            events.record(.normal, pod.lifecycle.ready ? "Ready" : "NotReady", object: "pod/\(name)", "")
            publish(pod.service)
        }
    }

    /// SIGTERM to the pod's process group, SIGKILL after `grace` if the same process still runs.
    private func stopProcess(_ pod: Pod, grace: Duration) {
        guard let pid = pod.pid else { return }
        PodProcess.signalGroup(pid, SIGTERM)
        let name = pod.name
        Task {
            try? await Task.sleep(for: grace)
            self.killIfStillRunning(name, pid: pid)
        }
    }

    private func killIfStillRunning(_ name: String, pid: pid_t) {
        guard pods[name]?.pid == pid else { return }
        PodProcess.signalGroup(pid, SIGKILL)
    }

    /// Drain, then stop: the pod leaves the endpoints (on every event loop), its requests in
    /// flight finish within the grace period, then SIGTERM, then SIGKILL when the grace period
    /// is over.
    private func terminate(_ name: String) async {
        guard let pod = pods[name], !pod.lifecycle.terminating else { return }
        let grace = pod.template.terminationGracePeriod
        let deadline = ContinuousClock.now + grace
        pod.lifecycle.beginTermination()
        events.record(.normal, "Killing", object: "pod/\(name)", "draining, then stopping")
        publish(pod.service)
        await publisher.settled()
        while ContinuousClock.now < deadline, publisher.inFlight(pod.endpoint) > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if let pid = pod.pid {
            PodProcess.signalGroup(pid, SIGTERM)
            while ContinuousClock.now < deadline, pods[name]?.pid == pid {
                try? await Task.sleep(for: .milliseconds(10))
            }
            if pods[name]?.pid == pid { PodProcess.signalGroup(pid, SIGKILL) }
        } else {
            pod.run?.cancel()  // waiting out a backoff: stop waiting
        }
        await pod.run?.value
    }

    // MARK: Endpoints

    private func readyEndpoints(of service: String) -> [EndpointAddress] {
        (services[service]?.pods ?? []).compactMap { pods[$0] }.filter { $0.lifecycle.ready }.map(\.endpoint)
    }

    private func publish(_ service: String) {
        publisher.publish(readyEndpoints(of: service), forService: service)
    }
}
