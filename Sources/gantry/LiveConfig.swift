import Foundation
import GantryAdmin
import GantryAutoscaler
import GantryConfig
import GantryCore
import GantryDNS
import GantryKubernetes
import GantryPods
import GantryProxy
import Logging
import NIOConcurrencyHelpers

/// The running configuration, and the one way it changes, whatever asks (the file changed on
/// disk, SIGHUP, `gantry apply`): the new file is loaded and checked in full, and a file with
/// a problem changes nothing; it is compared with what runs (``ConfigDiff``); then it is applied
/// part by part, in the order that drops no request:
///
/// 1. listeners: every new socket is bound first, or nothing changes at all;
/// 2. new services: their cluster IPs, and their pods, ready before a route sends to them;
/// 3. the data plane's new snapshot: routes, policies, services and their endpoints (requests
///    in flight keep the snapshot they started with);
/// 4. health checks, cluster IPs of removed services (their requests in flight finish), pods
///    (rolling replacements, scaling, removed services drained and stopped), autoscalers, DNS
///    zones, access log, spans.
///
/// Applications happen one at a time. Each applied configuration has a generation and the
/// hash of its text; each is recorded as a `ConfigApplied` or `ConfigRejected` event.
actor LiveConfig: ConfigController {
    struct Parts: Sendable {
        let plane: DataPlane
        let supervisor: PodSupervisor
        let endpoints: HealthCheckedEndpoints
        let clusterIPs: ClusterIPs
        let dns: DNSServer?
        let spans: SpanExporter
        let events: EventRecorder
        let logger: Logger
        /// `gantry up --kubernetes`: where the services' endpoints come from.
        let slices: EndpointSliceWatcher?
    }

    private let parts: Parts
    private let running: NIOLockedValueBox<LoadedConfig>
    private var current: ConfigStatus
    private var autoscalers: [String: (autoscaler: Autoscaler, task: Task<Void, Never>)] = [:]
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []
    /// Gantry is stopping: no change starts any more.
    private var closed = false

    /// How long a change waits for a new service's pods to be ready before its routes go live.
    static let newServiceReadiness = Duration.seconds(30)

    init(loaded: LoadedConfig, source: String, parts: Parts) {
        self.parts = parts
        self.running = NIOLockedValueBox(loaded)
        self.current = ConfigStatus(generation: 1, hash: loaded.hash, source: source, appliedAt: Date(), trigger: "start")
    }

    nonisolated var snapshot: RuntimeSnapshot { running.withLockedValue { $0.snapshot } }

    func status() -> ConfigStatus { current }

    func apply(_ request: ApplyRequest) async -> ApplyOutcome {
        await exclusive { await change(text: request.text, path: request.path, trigger: "apply", dryRun: request.dryRun) }
    }

    /// Applies a file again, as it is on disk now: `path`, or the running configuration's.
    @discardableResult
    func reload(_ path: String? = nil, trigger: String) async -> ApplyOutcome? {
        let source = path ?? current.source
        guard source.hasPrefix("/") || source.contains("/") || source.hasSuffix(".yaml") || source.hasSuffix(".yml") else {
            parts.logger.notice("nothing to reload: gantry runs \(source); `gantry example config > gantry.yaml` and `gantry apply gantry.yaml`")
            return nil
        }
        // Read in turn: of two reloads, the later one applies the file as it is last.
        return await exclusive {
            do {
                let text = try String(contentsOfFile: source, encoding: .utf8)
                return await change(text: text, path: source, trigger: trigger, dryRun: false)
            } catch {
                return reject(["\(source):1:1: (top level): cannot read the file: \(error.localizedDescription)"], source: source, trigger: trigger)
            }
        }
    }

    /// Gantry is stopping: a change under way finishes, and none starts after.
    func close() async {
        await exclusive { closed = true }
    }

    // MARK: Changing

    /// One change, in its turn (``exclusive(_:)``).
    private func change(text: String, path: String, trigger: String, dryRun: Bool) async -> ApplyOutcome {
        guard !closed else { return reject(["\(path):1:1: (top level): gantry is shutting down"], source: path, trigger: trigger) }
        let new: LoadedConfig
        let fromCluster = running.withLockedValue { $0.endpointsFromCluster }
        switch ConfigLoader.load(yaml: text, file: path, endpointsFromCluster: fromCluster) {
        case .failure(let error):
            let issues = error.issues.map(\.description)
            return dryRun ? ApplyOutcome(result: .rejected, generation: current.generation, issues: issues) : reject(issues, source: path, trigger: trigger)
        case .success(let loaded):
            new = loaded
        }
        let old = running.withLockedValue { $0 }
        let diff = ConfigDiff(from: old, to: new)
        if dryRun { return ApplyOutcome(result: .compared, generation: current.generation, diff: diff) }
        guard !diff.isEmpty else {
            current.reloads["unchanged", default: 0] += 1
            return ApplyOutcome(result: .unchanged, generation: current.generation, diff: diff)
        }
        do {
            try await applyChanges(diff, to: new)
        } catch {
            return reject(["\(path):1:1: (top level): \(error)"], source: path, trigger: trigger)
        }
        running.withLockedValue { $0 = new }
        current.generation += 1
        current.hash = new.hash
        current.source = path
        current.appliedAt = Date()
        current.trigger = trigger
        current.changes = diff.changes
        current.needsRestart = diff.needsRestart
        current.reloads["applied", default: 0] += 1
        let summary = diff.changes.map { "\($0.kind.rawValue)\($0.name.isEmpty ? "" : " \($0.name)") \($0.action.rawValue)" }
        parts.events.record(
            .normal, "ConfigApplied", object: "config/\(current.generation)",
            "\(String(new.hash.prefix(12))) from \(path) (\(trigger)): " + (summary.isEmpty ? "no live changes" : summary.joined(separator: "; ")))
        for restart in diff.needsRestart {
            parts.events.record(
                .warning, "RestartNeeded", object: "config/\(current.generation)",
                "\(restart.key): \(restart.from) → \(restart.to) takes effect when gantry restarts (\(restart.reason))")
        }
        parts.logger.info(
            "configuration applied",
            metadata: ["generation": "\(current.generation)", "hash": "\(new.hash.prefix(12))", "trigger": "\(trigger)", "changes": "\(diff.changes.count)"])
        return ApplyOutcome(result: .applied, generation: current.generation, diff: diff)
    }

    private func reject(_ issues: [String], source: String, trigger: String) -> ApplyOutcome {
        current.reloads["rejected", default: 0] += 1
        current.lastRejection = ConfigStatus.Rejection(time: Date(), source: source, trigger: trigger, issues: issues)
        let count = issues.count == 1 ? "1 problem" : "\(issues.count) problems"
        parts.events.record(.warning, "ConfigRejected", object: "config/\(current.generation)", "\(source) (\(trigger)): \(count); nothing changed: \(issues.first ?? "")")
        parts.logger.error("configuration rejected, nothing changed", metadata: ["source": "\(source)", "trigger": "\(trigger)"])
        for issue in issues { printError(issue) }
        printError("\(count) found")
        return ApplyOutcome(result: .rejected, generation: current.generation, issues: issues)
    }

    /// Runs changes one at a time, in the order they came: an actor lets another call in at
    /// every `await`. The turn passes straight to the next waiter, so none can jump the queue.
    private func exclusive<T: Sendable>(_ body: () async -> T) async -> T {
        if busy {
            await withCheckedContinuation { waiting.append($0) }  // woken holding the turn
        } else {
            busy = true
        }
        let result = await body()
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
        return result
    }

    /// What a change needs that can fail, made before anything changes: a failure here, or
    /// binding the listeners in step 1, leaves everything as it was. After that nothing fails.
    private struct Prepared {
        /// Set when the access log changes: the new sink (nil: no access log).
        var accessLog: AccessLogSink??
        /// Set when the span exporter changes.
        var spans: SpanExport.Backend??
    }

    private func prepare(_ diff: ConfigDiff, _ new: LoadedConfig) throws -> Prepared {
        let runtime = new.snapshot
        var prepared = Prepared()
        if !diff.changes(of: .accessLog).isEmpty {
            prepared.accessLog = .some(runtime.accessLog.enabled ? try AccessLogSink(destination: runtime.accessLog.destination) : nil)
        }
        if !diff.changes(of: .tracing).isEmpty, runtime.otlp != nil || running.withLockedValue({ $0.snapshot.otlp != nil }) {
            prepared.spans = .some(try parts.spans.prepare(runtime.otlp))
        }
        // The cluster zone's names are what can fail; its addresses are known once bound.
        let addresses = Dictionary(runtime.services.map { ($0.name, "127.0.0.1:1") }, uniquingKeysWith: { first, _ in first })
        _ = try Self.authority(for: runtime, clusterIPs: addresses)
        return prepared
    }

    private func applyChanges(_ diff: ConfigDiff, to new: LoadedConfig) async throws {
        let runtime = new.snapshot
        let plane = parts.plane
        let prepared = try prepare(diff, new)
        // 1. Every new socket binds, or the change stops here with nothing changed.
        if !diff.changes(of: .listener).isEmpty || !diff.changes(of: .limits).isEmpty {
            for listener in try await plane.applyListeners(runtime) {
                printError("gantry: listener \(listener.name) on \(listener.scheme)://\(listener.host):\(listener.port)")
            }
        }
        // 2. New services: cluster IPs, and pods ready before their routes go live (or before
        //    a service's static endpoints give way to its pods).
        bindClusterIPs(await parts.clusterIPs.bindNew(runtime.services))
        let added = diff.names(.service, .added)
        await parts.supervisor.startServices(of: runtime, clusterIPs: parts.clusterIPs.addresses)
        let before = running.withLockedValue { $0.snapshot }
        let waitFor = runtime.services.filter { $0.pods != nil && before.service(named: $0.name)?.pods == nil }.map(\.name)
        let deadline = ContinuousClock.now + Self.newServiceReadiness
        while !waitFor.isEmpty, ContinuousClock.now < deadline, await !parts.supervisor.hasReadyPods(waitFor) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        // 3. The data plane's new snapshot.
        plane.publish(runtime)
        await plane.settled()
        // 4. What reads the configuration around the data plane.
        parts.endpoints.update(services: runtime.services)
        parts.slices?.republish(added)
        let newEndpoints = diff.names(.endpoints, .changed).union(added)
        for service in runtime.services where service.healthCheck != nil && !service.staticEndpoints.isEmpty && newEndpoints.contains(service.name) {
            parts.endpoints.publish(service.staticEndpoints, forService: service.name)
        }
        await parts.clusterIPs.closeStale(keeping: runtime.services)
        bindClusterIPs(await parts.clusterIPs.bindNew(runtime.services))
        await parts.supervisor.apply(runtime, clusterIPs: parts.clusterIPs.addresses)
        await updateAutoscalers(runtime)
        if let dns = parts.dns {
            do {
                if let authority = try Self.authority(for: runtime, clusterIPs: parts.clusterIPs.addresses) { dns.replace(authority) }
            } catch {
                parts.events.record(.warning, "DNSZones", object: "config", "the zones stay as they were: \(error)")
            }
        }
        if let accessLog = prepared.accessLog { plane.setAccessLog(accessLog) }
        if let spans = prepared.spans { plane.setTracer(await parts.spans.start(spans)) }
    }

    /// A cluster IP that cannot be bound is a warning, not a failed change: the service is still
    /// reached through its routes, as before.
    private func bindClusterIPs(_ warnings: [String]) {
        for warning in warnings { parts.events.record(.warning, "ClusterIP", object: "config", warning) }
    }

    // MARK: Autoscalers

    /// Starts an autoscaler for each service with `autoscaling`, gives changed settings to the
    /// running ones (from their next sync), and stops those whose service has none any more.
    func updateAutoscalers(_ runtime: RuntimeSnapshot) async {
        for (name, entry) in autoscalers where runtime.service(named: name)?.autoscaling == nil {
            entry.task.cancel()
            autoscalers[name] = nil
        }
        for service in runtime.services {
            guard let settings = service.autoscaling else { continue }
            if let entry = autoscalers[service.name] {
                await entry.autoscaler.update(service: service, settings: settings)
                continue
            }
            let plane = parts.plane
            let autoscaler = Autoscaler(
                service: service, settings: settings, supervisor: parts.supervisor, publisher: parts.endpoints,
                requestTotals: {
                    var totals = RequestTotals()
                    for (key, count) in await plane.requestSeries().requests {
                        totals.routes[key.route, default: 0] += count
                        totals.services[key.service, default: 0] += count
                    }
                    return totals
                }, logger: parts.logger)
            autoscalers[service.name] = (autoscaler, Task { await autoscaler.run() })
        }
    }

    func stop() async {
        for entry in autoscalers.values { entry.task.cancel() }
        autoscalers = [:]
        await parts.spans.stop()
    }

    // MARK: DNS

    /// The DNS server's zones: the file's, and the services' cluster names unless the file has
    /// a zone of that name. Nil without `dns:`.
    static func authority(for runtime: RuntimeSnapshot, clusterIPs: [String: String]) throws -> DNSAuthority? {
        guard let settings = runtime.dns else { return nil }
        let services = clusterIPs.sorted { $0.key < $1.key }.compactMap { name, address in
            EndpointAddress(parsing: address).map { ClusterZone.Service(name: name, address: $0.host, port: $0.port) }
        }
        var zones = settings.zones
        if !zones.contains(where: { $0.origin == settings.clusterDomain }) {
            zones.append(try ClusterZone.make(domain: settings.clusterDomain, namespace: settings.namespace, services: services, ttl: settings.ttl))
        }
        return DNSAuthority(zones: zones)
    }
}
