import Foundation
import GantryAdmin
import GantryConfig
import GantryCore
import GantryDNS
import GantryHandover
import GantryKubernetes
import GantryPods
import GantryProxy
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

struct StackError: Error, CustomStringConvertible {
    let description: String
}

/// Everything `gantry up` runs, started in the request path's order and stopped in reverse:
/// the data plane (listeners and cluster IPs), the DNS server, the pods behind the services,
/// the admin API; then what changes it while it runs (``LiveConfig``, fed by the file, SIGHUP
/// and `gantry apply`). On SIGINT/SIGTERM the data plane drains first, then each pod drains
/// and stops.
struct Stack: Service {
    let loaded: LoadedConfig
    /// The file's path, or what stands for the built-in example.
    let source: String
    /// Watch `source` for changes (a file given to `gantry up`).
    let watchesFile: Bool
    let plane: DataPlane
    let spans: SpanExporter
    let logger: Logger
    let events: EventRecorder
    /// The gantry this one takes over from (`gantry up --takeover`), its descriptors inherited.
    let predecessor: Predecessor?
    /// `gantry up --kubernetes`: the API server the services' endpoints come from.
    let cluster: KubernetesAPI?

    struct Predecessor: Sendable {
        let client: TakeoverClient
        let pid: Int32
        /// Its pods, for ``PodSupervisor/start(takingOver:)``.
        let pods: Data
    }

    var snapshot: RuntimeSnapshot { loaded.snapshot }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    func run() async throws {
        // Taking over: the predecessor accepts on the same sockets until this gantry's pods are its own.
        if predecessor != nil { plane.holdConnections() }
        let bound = try await plane.start()
        for listener in bound {
            printError("gantry: listener \(listener.name) on \(listener.scheme)://\(listener.host):\(listener.port)")
        }
        let clusterIPs = ClusterIPs(plane: plane, logger: logger)
        do {
            try await clusterIPs.bindAll(snapshot.services)
        } catch {
            await plane.drain(gracePeriod: .zero)
            throw error
        }
        let dns = try await startDNS(clusterIPs: clusterIPs.addresses)
        let endpoints = HealthCheckedEndpoints(
            inner: DataPlaneEndpoints(plane: plane), services: snapshot.services, events: events, group: plane.group)
        for service in snapshot.services where service.healthCheck != nil && !service.staticEndpoints.isEmpty {
            endpoints.publish(service.staticEndpoints, forService: service.name)
        }
        let healthChecks = Task { await endpoints.run() }
        let slices = cluster.map { api in
            EndpointSliceWatcher(api: api, logger: logger) { service, addresses in endpoints.publish(addresses, forService: service) }
        }
        let watchingSlices = slices.map { watcher in Task { await watcher.run() } }
        let supervisor = PodSupervisor(
            snapshot: snapshot, clusterIPs: clusterIPs.addresses, publisher: endpoints, events: events,
            group: plane.group, logger: logger)
        let live = LiveConfig(
            loaded: loaded, source: source,
            parts: LiveConfig.Parts(
                plane: plane, supervisor: supervisor, endpoints: endpoints, clusterIPs: clusterIPs, dns: dns, spans: spans, events: events,
                logger: logger, slices: slices))

        let history = ReplicaHistory()
        let sampling = Task { [supervisor] in
            await history.run(supervisor: supervisor, services: { live.snapshot.services.filter { $0.pods != nil }.map(\.name) })
        }
        let stopAdmin = AsyncGate()
        var admin: Task<Void, Never>?
        if snapshot.admin.enabled {
            let api = AdminAPI(
                config: live, supervisor: supervisor,
                endpoints: { service in plane.endpoints(forService: service)?.endpoints.map(\.address.description) ?? [] },
                targets: { endpoints.targets(of: $0) },
                metrics: { [plane] in
                    await MetricsPage(snapshot: live.snapshot, plane: plane, supervisor: supervisor, config: await live.status()).render()
                },
                history: history, token: snapshot.admin.token)
            let bound = AsyncGate()
            let address = snapshot.admin.address
            let port = snapshot.admin.port
            let failure = NIOLockedValueBox<(any Error)?>(nil)
            admin = Task {
                do {
                    try await AdminServer(api: api).run(
                        host: address, port: port,
                        ready: { port in
                            printError("gantry: admin API on http://\(address):\(port)")
                            bound.open()
                        }, until: { await stopAdmin.wait() })
                } catch {
                    failure.withLockedValue { $0 = error }
                    bound.open()
                }
            }
            await bound.wait()
            if let error = failure.withLockedValue({ $0 }) {
                await plane.drain(gracePeriod: .zero)
                throw StackError(
                    description: "cannot serve the admin API on \(address):\(port): \(error) (is another gantry running? set admin.port)")
            }
        }
        try await supervisor.start(takingOver: predecessor?.pods)
        if let predecessor {
            await plane.acceptConnections()
            try predecessor.client.ready()
            let unused = Handover.shared.closeUnclaimed()
            printError("gantry: took over from process \(predecessor.pid)" + (unused.isEmpty ? "" : "; closed \(unused.joined(separator: ", ")), which this configuration does not have"))
        }
        // Waits for a successor (`gantry up --takeover`).
        let successor = AsyncGate()
        let takeovers: TakeoverListener?
        do {
            takeovers = try await TakeoverListener(stateDirectory: Self.absolute(snapshot.stateDirectory))
        } catch {
            takeovers = nil
            logger.warning("no takeover socket: `gantry up --takeover` cannot take over from this gantry", metadata: ["error": "\(error)"])
        }
        takeovers?.serve(
            handOver: { try await supervisor.handOver() },
            takeBack: {
                printError("gantry: the gantry taking over went away before it served; carrying on with the pods")
                await supervisor.resume()
            },
            handedOver: { _ in successor.open() })
        await live.updateAutoscalers(snapshot)
        let watcher = watchesFile ? Task { await ConfigWatcher(path: source, live: live).run() } : nil
        let hangUps = Task { await ConfigWatcher.reloadOnHangUp(live) }
        let hotRestarts = takeovers == nil ? nil : Task { await TakeoverSignal.startSuccessors() }
        printError("gantry: ready (\(snapshot.routes.rules.count) routes, \(snapshot.services.count) services); Ctrl-C to stop")

        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            group.addTask { await successor.wait() }
            await group.next()
            group.cancelAll()
            successor.open()  // a shutdown came first: the wait for a successor ends too
        }
        let successorPID = takeovers?.close()
        let handedOver = successorPID != nil
        if let successorPID {
            printError("gantry: process \(successorPID) took over; finishing requests in flight, leaving the pods running")
        } else {
            printError("gantry: shutting down")
        }
        watcher?.cancel()
        hangUps.cancel()
        hotRestarts?.cancel()
        await live.close()
        // Handed over: the other gantry accepts now, so idle keep-alive clients get a moment to
        // send one more request here and be told to reconnect, rather than lose it to a close.
        await plane.drain(gracePeriod: live.snapshot.shutdownGracePeriod, idleLinger: handedOver ? .seconds(2) : .zero)
        healthChecks.cancel()
        watchingSlices?.cancel()
        sampling.cancel()
        await live.stop()
        if handedOver { await supervisor.abandon() } else { await supervisor.shutdown() }
        await dns?.stop()
        stopAdmin.open()
        await admin?.value
    }

    /// The DNS server, when the file has `dns:`: its zones and the services' cluster names.
    private func startDNS(clusterIPs: [String: String]) async throws -> DNSServer? {
        guard let settings = snapshot.dns, let authority = try LiveConfig.authority(for: snapshot, clusterIPs: clusterIPs) else { return nil }
        let server = DNSServer(authority: authority, group: plane.group)
        do {
            let port = try await server.start(host: settings.address, port: settings.port)
            printError("gantry: DNS on \(settings.address):\(port) (udp, tcp) for \(authority.zones.map { $0.origin.description }.joined(separator: ", "))")
        } catch {
            await plane.drain(gracePeriod: .zero)
            throw StackError(description: "cannot serve DNS on \(settings.address):\(settings.port): \(error) (set dns.listen)")
        }
        return server
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

    func closeTunnels(to endpoint: EndpointAddress) async { await plane.closeTunnels(to: endpoint) }

    func requestCount(_ endpoint: EndpointAddress) -> Int { plane.requestCount(endpoint) }
}
