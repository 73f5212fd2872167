import GantryAdmin
import GantryAutoscaler
import GantryConfig
import GantryCore
import GantryDNS
import GantryPods
import GantryProxy
import Logging
import ServiceLifecycle
import Synchronization

struct StackError: Error, CustomStringConvertible {
    let description: String
}

/// Everything `gantry up` runs, started in the request path's order and stopped in reverse:
/// the data plane (listeners and cluster IPs), the pods behind the services, the admin API.
/// On SIGINT/SIGTERM the data plane drains first, then each pod drains and stops.
struct Stack: Service {
    let snapshot: RuntimeSnapshot
    let plane: DataPlane
    let logger: Logger
    let events: EventRecorder
    /// Cluster IPs come from 127.0.10.0/24 on (a block this gantry holds while it runs).
    let clusterIPs = LoopbackAddresses(blocks: 10...99)

    func run() async throws {
        let bound = try await plane.start()
        for listener in bound {
            printError("gantry: listener \(listener.name) on \(listener.scheme)://\(listener.host):\(listener.port)")
        }
        let clusterIPs = try await bindClusterIPs()
        let dns = try await startDNS(clusterIPs: clusterIPs)
        let endpoints = HealthCheckedEndpoints(
            inner: DataPlaneEndpoints(plane: plane), services: snapshot.services, events: events, group: plane.group)
        for service in snapshot.services where service.healthCheck != nil && !service.staticEndpoints.isEmpty {
            endpoints.publish(service.staticEndpoints, forService: service.name)
        }
        let healthChecks = Task { await endpoints.run() }
        let supervisor = PodSupervisor(
            snapshot: snapshot, clusterIPs: clusterIPs, publisher: endpoints, events: events,
            group: plane.group, logger: logger)

        let history = ReplicaHistory()
        let sampling = Task { [supervisor] in
            await history.run(supervisor: supervisor, services: snapshot.services.filter { $0.pods != nil }.map(\.name))
        }
        let stopAdmin = AsyncGate()
        var admin: Task<Void, Never>?
        if snapshot.admin.enabled {
            let api = AdminAPI(
                snapshot: snapshot, supervisor: supervisor,
                endpoints: { service in plane.endpoints(forService: service)?.endpoints.map(\.address.description) ?? [] },
                targets: { endpoints.targets(of: $0) },
                metrics: { [snapshot, plane] in await MetricsPage(snapshot: snapshot, plane: plane, supervisor: supervisor).render() },
                history: history)
            let bound = AsyncGate()
            let address = snapshot.admin.address
            let port = snapshot.admin.port
            let failure = Mutex<(any Error)?>(nil)
            admin = Task {
                do {
                    try await AdminServer(api: api).run(
                        host: address, port: port,
                        ready: { port in
                            printError("gantry: admin API on http://\(address):\(port)")
                            bound.open()
                        }, until: { await stopAdmin.wait() })
                } catch {
                    failure.withLock { $0 = error }
                    bound.open()
                }
            }
            await bound.wait()
            if let error = failure.withLock({ $0 }) {
                await plane.drain(gracePeriod: .zero)
                throw StackError(
                    description: "cannot serve the admin API on \(address):\(port): \(error) (is another gantry running? set admin.port)")
            }
        }
        try await supervisor.start()
        var autoscalers: [Task<Void, Never>] = []
        for service in snapshot.services {
            guard let settings = service.autoscaling else { continue }
            let autoscaler = Autoscaler(
                service: service, settings: settings, supervisor: supervisor, publisher: endpoints, logger: logger)
            autoscalers.append(Task { await autoscaler.run() })
        }
        printError("gantry: ready (\(snapshot.routes.rules.count) routes, \(snapshot.services.count) services); Ctrl-C to stop")

        try? await gracefulShutdown()
        printError("gantry: shutting down")
        await plane.drain(gracePeriod: snapshot.shutdownGracePeriod)
        healthChecks.cancel()
        sampling.cancel()
        for autoscaler in autoscalers { autoscaler.cancel() }
        await supervisor.shutdown()
        await dns?.stop()
        stopAdmin.open()
        await admin?.value
    }

    /// The DNS server, when the file has `dns:`: its zones and the services' cluster names.
    private func startDNS(clusterIPs: [String: String]) async throws -> DNSServer? {
        guard let settings = snapshot.dns else { return nil }
        let services = clusterIPs.sorted { $0.key < $1.key }.compactMap { name, address in
            EndpointAddress(parsing: address).map { ClusterZone.Service(name: name, address: $0.host, port: $0.port) }
        }
        var zones = settings.zones
        if !zones.contains(where: { $0.origin == settings.clusterDomain }) {
            zones.append(try ClusterZone.make(domain: settings.clusterDomain, namespace: settings.namespace, services: services, ttl: settings.ttl))
        }
        let server = DNSServer(authority: DNSAuthority(zones: zones), group: plane.group)
        do {
            let port = try await server.start(host: settings.address, port: settings.port)
            printError("gantry: DNS on \(settings.address):\(port) (udp, tcp) for \(zones.map { $0.origin.description }.joined(separator: ", "))")
        } catch {
            await plane.drain(gracePeriod: .zero)
            throw StackError(description: "cannot serve DNS on \(settings.address):\(settings.port): \(error) (set dns.listen)")
        }
        return server
    }

    /// Gives each service with a cluster IP its address: the configured one, or the first free
    /// one from 127.0.10.1 on.
    private func bindClusterIPs() async throws -> [String: String] {
        let pool = clusterIPs
        var result: [String: String] = [:]
        for service in snapshot.services {
            let address: String
            let port: Int
            switch service.clusterIP {
            case .none: continue
            case .fixed(let fixed, let fixedPort): (address, port) = (fixed, fixedPort)
            case .automatic(let automaticPort):
                guard let free = pool.allocate(port: automaticPort) else {
                    logger.warning("no free cluster IP", metadata: ["service": "\(service.name)"])
                    continue
                }
                (address, port) = (free, automaticPort)
            }
            let bound = try await plane.bindClusterIP(service: service.name, address: address, port: port)
            result[service.name] = "\(bound.host):\(bound.port)"
        }
        return result
    }
}

/// The data plane as the pod supervisor's endpoint publisher.
struct DataPlaneEndpoints: EndpointPublisher {
    let plane: DataPlane

    func publish(_ endpoints: [EndpointAddress], forService service: String) {
        plane.setEndpoints(endpoints, forService: service)
    }

    func settled() async { await plane.settled() }

    func inFlight(_ endpoint: EndpointAddress) -> Int { plane.inFlight(endpoint) }

    func requestCount(_ endpoint: EndpointAddress) -> Int { plane.requestCount(endpoint) }
}
