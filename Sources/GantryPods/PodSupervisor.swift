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
        /// The service's template generation the pod was made from: a rollout replaces the
        /// pods of older generations.
        let generation: Int
        let environment: [String: String]
        /// What the pod was made from, as ``PodTemplate/fingerprint(environment:)`` says it.
        let fingerprint: String
        var lifecycle: PodLifecycle {
            didSet { if oldValue.ready != lifecycle.ready { readyTransition = Date() } }
        }
        /// When `lifecycle.ready` last changed, for the autoscaler's CPU rules.
        var readyTransition = Date()
        var pid: pid_t?
        /// When the process `pid` started (/proc's clock ticks): with the PID, its identity.
        var processStart: UInt64?
        var run: Task<Void, Never>?
        var probes: [Task<Void, Never>] = []
        var finished = false

        init(
            name: String, service: String, address: String, template: PodTemplate, generation: Int, logPath: String, environment: [String: String],
            fingerprint: String
        ) {
            self.name = name
            self.service = service
            self.address = address
            self.port = template.port
            self.template = template
            self.generation = generation
            self.logPath = logPath
            self.environment = environment
            self.fingerprint = fingerprint
            lifecycle = PodLifecycle(
                restartPolicy: template.restartPolicy, startupProbe: template.startupProbe,
                readinessProbe: template.readinessProbe, livenessProbe: template.livenessProbe, backoff: template.restartBackoff)
        }

        var endpoint: EndpointAddress { EndpointAddress(host: address, port: port) }
    }

    private struct Service {
        let name: String
        /// What new pods are made from.
        var template: PodTemplate
        /// Bumped by each rollout: pods of older generations are replaced.
        var generation = 0
        var replicas: Int
        /// The file's replica count: when a new file leaves it as it was, a count set since by
        /// hand or by the autoscaler stays.
        var fileReplicas: Int
        var pods: [String] = []
        var rollingOut = false
        /// Gone from the configuration: its pods drain and stop.
        var removed = false
        /// Whether a pod has been ready: until then the service's endpoints are left as they
        /// were (static endpoints it is leaving, or none), not emptied.
        var published = false
    }

    private var services: [String: Service] = [:]
    private var serviceOrder: [String]
    /// Services the configuration gives static endpoints: their endpoints are not the pods'
    /// (pods of a service turned static still drain and stop, without touching them).
    private var staticServices: Set<String>
    private var pods: [String: Pod] = [:]
    private var clusterIPs: [String: String]
    private var serviceEnvironment: [String: String]
    private let publisher: any EndpointPublisher
    public nonisolated let events: EventRecorder
    private let probeRunner: ProbeRunner
    private let addresses: LoopbackAddresses
    private let logDirectory: String
    private let ledger: ProcessLedger
    private let logger: Logger
    private var stopping = false
    /// Every pod handed to the gantry taking over from this one: nothing is probed, restarted,
    /// created or stopped any more.
    private var handedOver = false
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
                services[settings.name] = Service(name: settings.name, template: template, replicas: template.replicas, fileReplicas: template.replicas)
            }
        }
        self.services = services
        self.serviceOrder = order
        self.staticServices = Set(snapshot.services.filter { $0.pods == nil }.map(\.name))
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
        self.addresses = LoopbackAddresses(blocks: 100...199, owner: state)
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

    /// Takes over the pods an earlier gantry on this state directory left running (the ones
    /// `handedOver` lists, from a gantry that hands over to this one, or the ones its process
    /// ledger lists, when it died), stops those it cannot take over, then creates whatever
    /// pods each service still lacks.
    public func start(takingOver handedOver: Data? = nil) async throws {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        var found: [ProcessLedger.Entry]
        var strays: [pid_t]
        if let handedOver {
            found = try JSONDecoder().decode([ProcessLedger.Entry].self, from: handedOver)
            strays = []
        } else {
            (found, strays) = ledger.leftovers()
            for group in strays {
                events.record(.warning, "Orphaned", object: "process/\(group)", "left by an older gantry that recorded no pod for it; terminating")
            }
        }
        var seen = Set<pid_t>()
        found = found.filter { seen.insert($0.pid).inserted }
        var outdated = Set<String>()
        for entry in found {
            switch adopt(entry) {
            case .current: break
            case .outdated: outdated.insert(entry.service)
            case .refused(let why):
                // A process that has exited leaves nothing to stop, and its PID may be another's now.
                guard entry.isRunning else { continue }
                events.record(.warning, "Orphaned", object: "pod/\(entry.name)", "process \(entry.pid) cannot be taken over (\(why)); terminating")
                strays.append(entry.pid)
            }
        }
        await stop(strays)
        recordLedger()
        for name in serviceOrder where services[name] != nil {
            if outdated.contains(name) {
                events.record(.normal, "TemplateChanged", object: "service/\(name)", "pods taken over were started from another template: replacing them")
                services[name]!.rollingOut = true
                Task { await self.roll(name) }
            } else {
                reconcile(name)
            }
        }
    }

    private enum Adoption {
        case current, outdated
        case refused(String)
    }

    /// A running pod becomes this gantry's, as it was: same name, address and process. Its
    /// probes start at once; it serves when it was ready (handed over) or once its readiness
    /// probe passes. One made from another template (or another environment) is adopted as of
    /// an older generation, for a rollout to replace.
    private func adopt(_ entry: ProcessLedger.Entry) -> Adoption {
        guard entry.isRunning else { return .refused("it has exited") }
        guard let service = services[entry.service], !service.removed else { return .refused("service \(entry.service) has no pods now") }
        guard entry.port == service.template.port else { return .refused("it listens on port \(entry.port), the service's pods now on \(service.template.port)") }
        guard pods[entry.name] == nil else { return .refused("a pod of that name exists") }
        guard addresses.claim(entry.address) else { return .refused("its address \(entry.address) is another gantry's") }
        let environment = podEnvironment(service: entry.service, name: entry.name, address: entry.address, template: service.template)
        let fingerprint = service.template.fingerprint(environment: serviceEnvironment)
        let current = fingerprint == entry.fingerprint
        let pod = Pod(
            name: entry.name, service: entry.service, address: entry.address, template: service.template,
            generation: current ? service.generation : service.generation - 1, logPath: "\(logDirectory)/\(entry.name).log",
            environment: environment, fingerprint: entry.fingerprint)
        pod.pid = entry.pid
        pod.processStart = entry.start
        pod.lifecycle.processAdopted(at: .now, restarts: entry.restarts, started: entry.started, ready: entry.ready)
        pods[entry.name] = pod
        services[entry.service]!.pods.append(entry.name)
        events.record(
            .normal, "Adopted", object: "pod/\(entry.name)",
            "process \(entry.pid) at \(entry.address):\(entry.port)" + (current ? "" : ", started from another template"))
        startProbes(pod, delayed: false)
        pod.run = Task { await self.run(entry.name, adopted: true) }
        publish(entry.service)
        return current ? .current : .outdated
    }

    /// Processes that cannot be taken over: SIGTERM, then SIGKILL after a grace period (they
    /// have no clients left to drain).
    private func stop(_ groups: [pid_t]) async {
        guard !groups.isEmpty else { return }
        for group in groups { PodProcess.signalGroup(group, SIGTERM) }
        let deadline = ContinuousClock.now + Self.leftoverGracePeriod
        while ContinuousClock.now < deadline, groups.contains(where: { ProcessLedger.startTime(of: $0) != nil }) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for group in groups { PodProcess.signalGroup(group, SIGKILL) }
    }

    /// Hands every running pod to the gantry taking over from this one (`gantry up
    /// --takeover`): from now on this supervisor probes, restarts, creates and stops nothing,
    /// and the returned record is what the next gantry's ``start(takingOver:)`` adopts. Pods
    /// already leaving are not handed over: ``abandon()`` stops them. ``resume()`` undoes this
    /// when the takeover fails.
    public func handOver() throws -> Data {
        handedOver = true
        var entries: [ProcessLedger.Entry] = []
        for pod in pods.values {
            for probe in pod.probes { probe.cancel() }
            pod.probes = []
            guard !pod.lifecycle.terminating, let entry = ledgerEntry(pod) else { continue }
            var handed = entry
            handed.started = pod.lifecycle.started
            handed.ready = pod.lifecycle.ready
            entries.append(handed)
        }
        return try JSONEncoder().encode(entries.sorted { $0.name < $1.name })
    }

    /// The takeover failed: this supervisor carries on with its pods.
    public func resume() {
        guard handedOver else { return }
        handedOver = false
        for pod in pods.values where pod.pid != nil && !pod.lifecycle.terminating { startProbes(pod, delayed: false) }
        recordLedger()
        for name in serviceOrder where services[name] != nil { reconcile(name) }
    }

    /// After a takeover, as this gantry exits: the pods run on, the next gantry's now; pods
    /// that were already leaving are stopped; the ledger goes.
    public func abandon() {
        for pod in pods.values where pod.lifecycle.terminating {
            if let pid = pod.pid { PodProcess.signalGroup(pid, SIGTERM) }
        }
        ledger.remove()
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

    /// Replaces every pod of the service with one made from its template, as `kubectl rollout
    /// restart` does. Returns at once; the rollout goes on in the background.
    public func rolloutRestart(_ service: String) throws {
        guard let state = services[service], !state.removed else { throw error(for: service) }
        rollout(service, to: state.template, reason: "RolloutRestart", message: "restarting \(state.pods.count) pods")
    }

    /// Brings the services to a new configuration: a new service starts its pods, a removed one
    /// drains and stops them (requests in flight to them finish first), a changed template
    /// replaces its service's pods as the service's rollout strategy allows, and a changed
    /// replica count scales. A count set by hand or by the autoscaler stays when the file's
    /// count did not change; the autoscaler's bounds apply.
    public func apply(_ snapshot: RuntimeSnapshot, clusterIPs: [String: String]) {
        self.clusterIPs = clusterIPs
        serviceEnvironment = Self.serviceEnvironment(clusterIPs)
        serviceOrder = snapshot.services.map(\.name)
        let wasStatic = staticServices
        staticServices = Set(snapshot.services.filter { $0.pods == nil }.map(\.name))
        defer {
            // A service turned from static endpoints to pods: its ready pods take over now.
            for name in wasStatic.subtracting(staticServices) where services[name] != nil { publish(name) }
        }
        let wanted = Set(snapshot.services.filter { $0.pods != nil }.map(\.name))
        for name in services.keys where !wanted.contains(name) { remove(name) }
        for settings in snapshot.services {
            guard let template = settings.pods else { continue }
            guard let state = services[settings.name], !state.removed else {
                services[settings.name] = Service(name: settings.name, template: template, replicas: template.replicas, fileReplicas: template.replicas)
                events.record(.normal, "ServiceAdded", object: "service/\(settings.name)", "starting \(template.replicas) pods")
                reconcile(settings.name)
                continue
            }
            var replicas = template.replicas == state.fileReplicas ? state.replicas : template.replicas
            if let autoscaling = settings.autoscaling { replicas = min(max(replicas, autoscaling.minReplicas), autoscaling.maxReplicas) }
            services[settings.name]!.fileReplicas = template.replicas
            if state.template.withoutDeployment != template.withoutDeployment {
                services[settings.name]!.replicas = replicas
                rollout(settings.name, to: template, reason: "TemplateChanged", message: "the pod template changed: replacing \(state.pods.count) pods")
            } else {
                services[settings.name]!.template = template
                if replicas != state.replicas { try? scale(settings.name, replicas: replicas, message: "the file asks for \(replicas) replicas") }
            }
        }
    }

    /// Starts the pods of the services in `snapshot` that do not run yet, and nothing else: what
    /// a new configuration needs before its routes send requests to those services.
    public func startServices(of snapshot: RuntimeSnapshot, clusterIPs: [String: String]) {
        self.clusterIPs = clusterIPs
        serviceEnvironment = Self.serviceEnvironment(clusterIPs)
        for settings in snapshot.services {
            guard let template = settings.pods, services[settings.name] == nil || services[settings.name]!.removed else { continue }
            services[settings.name] = Service(name: settings.name, template: template, replicas: template.replicas, fileReplicas: template.replicas)
            events.record(.normal, "ServiceAdded", object: "service/\(settings.name)", "starting \(template.replicas) pods")
            reconcile(settings.name)
        }
    }

    /// Whether every pod-backed service in `names` has a ready pod (or none wanted).
    public func hasReadyPods(_ names: [String]) -> Bool {
        names.allSatisfy { name in
            guard let service = services[name] else { return true }
            return service.replicas == 0 || !readyEndpoints(of: name).isEmpty
        }
    }

    /// A service gone from the configuration: every pod drains and stops, then the service goes.
    private func remove(_ name: String) {
        guard let state = services[name], !state.removed else { return }
        services[name]!.removed = true
        services[name]!.replicas = 0
        events.record(.normal, "ServiceRemoved", object: "service/\(name)", "draining and stopping \(state.pods.count) pods")
        let victims = state.pods.filter { beginTermination($0) }
        Task {
            await withTaskGroup(of: Void.self) { group in
                for pod in victims { group.addTask { await self.drainAndStop(pod) } }
            }
            self.forget(name)
        }
    }

    private func forget(_ name: String) {
        guard services[name]?.removed == true, services[name]?.pods.isEmpty ?? true else { return }
        services[name] = nil
        if !staticServices.contains(name) { publisher.publish([], forService: name) }
    }

    /// Drains and stops every pod, all services at once; the process ledger goes only once
    /// none runs, so that no pod outlives gantry unrecorded.
    public func shutdown() async {
        stopping = true
        // Pods already leaving (a removed service, a rollout) are stopped by their own drain.
        let leaving = pods.values.filter(\.lifecycle.terminating).compactMap(\.run)
        await withTaskGroup(of: Void.self) { group in
            for name in pods.keys { group.addTask { await self.terminate(name) } }
        }
        for run in leaving { await run.value }
        ledger.remove()
        addresses.disown()
    }

    public func podStatuses() -> [PodStatus] {
        let usage = ProcessGroupUsage.read(groups: Set(pods.values.compactMap(\.pid)))
        return pods.values.sorted { ($0.service, $0.created, $0.name) < ($1.service, $1.created, $1.name) }.map { pod in
            PodStatus(
                name: pod.name, service: pod.service, phase: pod.lifecycle.phase.rawValue, reason: pod.lifecycle.reason,
                ready: pod.lifecycle.ready, restarts: pod.lifecycle.restarts, created: pod.created,
                address: "\(pod.address):\(pod.port)", pid: pod.pid, inFlight: publisher.inFlight(pod.endpoint),
                lastExitCode: pod.lifecycle.lastExitCode, log: pod.logPath, memoryBytes: pod.pid.flatMap { usage[$0]?.residentBytes },
                readyTransition: pod.readyTransition)
        }
    }

    public func serviceStatus(_ name: String) -> (clusterIP: String?, replicas: Int?) {
        (clusterIPs[name], services[name].flatMap { $0.removed ? nil : $0.replicas })
    }

    public func logPath(ofPod name: String) -> String? { pods[name]?.logPath }

    private func error(for service: String) -> SupervisorError {
        serviceOrder.contains(service) ? .noPods(service) : .unknownService(service)
    }

    // MARK: Replica sets

    private func reconcile(_ name: String) {
        guard let service = services[name], !stopping, !handedOver, !service.rollingOut else { return }
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
        let pod = Pod(
            name: name, service: serviceName, address: address, template: service.template, generation: service.generation,
            logPath: "\(logDirectory)/\(name).log",
            environment: podEnvironment(service: serviceName, name: name, address: address, template: service.template),
            fingerprint: service.template.fingerprint(environment: serviceEnvironment))
        pods[name] = pod
        services[serviceName]!.pods.append(name)
        events.record(.normal, "Scheduled", object: "pod/\(name)", "assigned \(address):\(pod.port)")
        pod.run = Task { await self.run(name) }
        return name
    }

    /// The services' variables, then the pod's own, then the template's.
    private func podEnvironment(service: String, name: String, address: String, template: PodTemplate) -> [String: String] {
        var environment = serviceEnvironment
        environment["PORT"] = "\(template.port)"
        environment["POD_IP"] = address
        environment["POD_NAME"] = name
        environment["HOSTNAME"] = name
        environment["SERVICE_NAME"] = service
        for variable in template.env { environment[variable.name] = variable.value }
        return environment
    }

    /// Starts replacing the service's pods with pods of `template`; a rollout under way carries
    /// on towards the new template.
    private func rollout(_ service: String, to template: PodTemplate, reason: String, message: String) {
        services[service]!.template = template
        services[service]!.generation += 1
        events.record(.normal, reason, object: "service/\(service)", message)
        guard !services[service]!.rollingOut else { return }
        services[service]!.rollingOut = true
        Task { await self.roll(service) }
    }

    /// Kubernetes' rolling update: new pods above the replica count up to maxSurge, old pods
    /// stopped (drained first) while no more than maxUnavailable are unavailable, until every
    /// pod is of the current template. Gives up, as a Deployment does, when no new pod has
    /// become ready for progressDeadlineSeconds (600 s).
    private func roll(_ service: String) async {
        var lastProgress = ContinuousClock.now
        var readyNew = 0
        var complete = false
        while !stopping, !handedOver, let state = services[service], !state.removed {
            let live = state.pods.compactMap { pods[$0] }.filter { !$0.lifecycle.terminating }
            let old = live.filter { $0.generation != state.generation }
            let new = live.filter { $0.generation == state.generation }
            if old.isEmpty {
                complete = true
                break
            }
            let ready = new.filter(\.lifecycle.ready).count
            if ready != readyNew { (readyNew, lastProgress) = (ready, .now) }
            guard ContinuousClock.now - lastProgress < .seconds(600) else {
                events.record(.warning, "ProgressDeadlineExceeded", object: "service/\(service)", "no new pod became ready in 600s")
                break
            }
            let step = state.template.rollout.step(
                replicas: state.replicas, old: (old.count, old.filter(\.lifecycle.ready).count), new: (new.count, ready))
            for _ in 0..<step.create { createPod(for: service) }
            // Not-ready pods serve nothing: they go first, then the oldest.
            let victims = old.sorted { a, b in a.lifecycle.ready != b.lifecycle.ready ? !a.lifecycle.ready : a.created < b.created }
            for victim in victims.prefix(step.stop) where beginTermination(victim.name) {
                Task { await self.drainAndStop(victim.name) }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        services[service]?.rollingOut = false
        if complete { events.record(.normal, "RolloutComplete", object: "service/\(service)", "every pod is of the current template") }
        reconcile(service)
    }

    // MARK: One pod

    /// Runs the pod's process, and again whenever its restart policy says so. An adopted pod's
    /// first process is the one it was adopted with.
    private func run(_ name: String, adopted: Bool = false) async {
        var adopted = adopted
        while let pod = pods[name] {
            let outcome: PodProcess.Outcome
            if adopted, let pid = pod.pid, let start = pod.processStart {
                adopted = false
                outcome = await PodProcess.waitForEnd(of: pid, start: start)
            } else {
                let launch = PodProcess.Launch(
                    executable: pod.template.command[0] == "gantry" ? PodProcess.currentExecutable : pod.template.command[0],
                    arguments: Array(pod.template.command.dropFirst()) + pod.template.args, environment: pod.environment,
                    workingDirectory: pod.template.workingDir, logPath: pod.logPath)
                outcome = await PodProcess.run(launch) { pid in await self.started(name, pid: pid) }
            }
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
        pod.processStart = ProcessLedger.startTime(of: pid)
        recordLedger()
        pod.lifecycle.processStarted(at: .now)
        events.record(.normal, "Started", object: "pod/\(name)", "process \(pid)")
        if pod.lifecycle.terminating {
            PodProcess.signalGroup(pid, SIGTERM)
            return
        }
        startProbes(pod, delayed: true)
        publish(pod.service)
    }

    /// - Parameter delayed: wait out each probe's initial delay (a process just started), or
    ///   probe at once (one taken over, running for a while).
    private func startProbes(_ pod: Pod, delayed: Bool) {
        let template = pod.template
        for (kind, probe) in [(ProbeKind.startup, template.startupProbe), (.readiness, template.readinessProbe), (.liveness, template.livenessProbe)] {
            guard let probe else { continue }
            let name = pod.name
            pod.probes.append(Task { await self.probeLoop(name, kind: kind, probe: probe, initialDelay: delayed ? probe.initialDelay : .zero) })
        }
    }

    /// The ledger as the pods are now; nothing once they are handed over.
    private func recordLedger() {
        guard !handedOver else { return }
        ledger.record(pods.values.compactMap(ledgerEntry))
    }

    private func ledgerEntry(_ pod: Pod) -> ProcessLedger.Entry? {
        guard let pid = pod.pid, let start = pod.processStart else { return nil }
        return ProcessLedger.Entry(
            pid: pid, start: start, service: pod.service, name: pod.name, address: pod.address, port: pod.port,
            fingerprint: pod.fingerprint, restarts: pod.lifecycle.restarts)
    }

    private func ended(_ name: String, _ outcome: PodProcess.Outcome) -> PodLifecycle.Action {
        guard let pod = pods[name] else { return .stop }
        for probe in pod.probes { probe.cancel() }
        pod.probes = []
        pod.pid = nil
        pod.processStart = nil
        // Handed over: the next gantry restarts it.
        if handedOver { return .stop }
        recordLedger()
        let wasReady = pod.lifecycle.ready
        let action: PodLifecycle.Action
        switch outcome {
        case .vanished:
            action = pod.lifecycle.processVanished(at: .now)
            events.record(pod.lifecycle.terminating ? .normal : .warning, "Exited", object: "pod/\(name)", "exit code unknown (a process taken over)")
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
            forget(pod.service)
        }
    }

    private func probeLoop(_ name: String, kind: ProbeKind, probe: Probe, initialDelay: Duration) async {
        try? await Task.sleep(for: initialDelay)
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
        guard let pod = pods[name], !handedOver else { return }
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
        guard beginTermination(name) else { return }
        await drainAndStop(name)
    }

    /// The pod leaves its service's endpoints at once; false when it is already leaving.
    private func beginTermination(_ name: String) -> Bool {
        guard let pod = pods[name], !pod.lifecycle.terminating else { return false }
        pod.lifecycle.beginTermination()
        events.record(.normal, "Killing", object: "pod/\(name)", "draining, then stopping")
        publish(pod.service)
        return true
    }

    private func drainAndStop(_ name: String) async {
        guard let pod = pods[name] else { return }
        let grace = pod.template.terminationGracePeriod
        let deadline = ContinuousClock.now + grace
        // What is left of the grace period once requests have had theirs: for the process to
        // stop after SIGTERM.
        let stopTime = min(grace / 4, .seconds(2))
        await publisher.settled()
        while ContinuousClock.now < deadline - stopTime, publisher.inFlight(pod.endpoint) > 0 {
            try? await Task.sleep(for: .milliseconds(10))
        }
        // WebSockets do not end by themselves as requests do: at the end of the drain period
        // gantry closes them, telling both ends they are going away (1001).
        if publisher.inFlight(pod.endpoint) > 0 { await publisher.closeTunnels(to: pod.endpoint) }
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
        finish(name)  // a pod that had already ended (restartPolicy Never, OnFailure) leaves now
    }

    // MARK: Endpoints

    private func readyEndpoints(of service: String) -> [EndpointAddress] {
        (services[service]?.pods ?? []).compactMap { pods[$0] }.filter { $0.lifecycle.ready }.map(\.endpoint)
    }

    private func publish(_ service: String) {
        guard !staticServices.contains(service) else { return }
        let ready = readyEndpoints(of: service)
        if let state = services[service], !state.published {
            guard !ready.isEmpty else { return }
            services[service]!.published = true
        }
        publisher.publish(ready, forService: service)
    }
}
