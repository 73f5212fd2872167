import Foundation
import GantryConfig
import GantryCore
import GantryHandover
import GantryTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A listener that could not bind, with the address in the message.
public struct ListenError: Error, CustomStringConvertible {
    public let listener: String
    public let address: String
    public let underlying: any Error

    public var description: String {
        let reason = (underlying as? SocketError)?.reason ?? (underlying as? IOError).map { $0.errnoCode == EADDRINUSE ? "address already in use" : "\($0)" } ?? "\(underlying)"
        return "listener \(listener) cannot listen on \(address): \(reason)"
    }
}

/// A listener after binding, with the port the system chose when the file said 0.
public struct BoundListener: Sendable {
    public let name: String
    public let host: String
    public let port: Int
    public var scheme = "http"
}

/// The data plane: the listeners, one ``LoopContext`` per event loop, and the control
/// operations that reach every loop: publishing a new configuration or a new endpoint set, and
/// draining. Each accepted connection stays on the event loop NIO gave it.
///
/// Every change makes a new ``PlaneState`` under the lock, numbered, and hands it to every loop;
/// a loop keeps the newest it has seen, so changes that cross on their way never roll one back.
/// State that outlives a configuration is kept here by stable identity: each policy's shared
/// state and background work by ``PolicyIdentity``, endpoint state by address
/// (``EndpointRegistry``).
public final class DataPlane: Sendable {
    public let group: MultiThreadedEventLoopGroup
    public let registry = EndpointRegistry()
    private let logger: Logger
    private let ownsGroup: Bool
    let connectionLimiter: ConnectionLimiter
    private let listeners: ListenerSet

    private struct State {
        var published: PlaneState
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        var accessLog: AccessLogSink?
        var tracer: RequestTracer?
        /// Endpoint sets by service name: the file's static endpoints, or what the control
        /// plane published (ready pods, healthy targets).
        var endpointSets: [String: EndpointSet]
        /// Each policy's shared state, while a configuration uses it.
        var policyStates: [PolicyIdentity: any Sendable]
        /// Each policy's background work (a jwt policy fetching its keys), once started.
        var maintenance: [PolicyIdentity: Task<Void, Never>] = [:]
        var started = false
        var certificateWatch: RepeatedTask?
    }

    private let state: NIOLockedValueBox<State>

    /// - Parameters:
    ///   - group: event loops to run on; by default one per `runtime.workers`.
    ///   - tracer: records a span per request when set (`tracing.otlp`).
    public init(
        snapshot: RuntimeSnapshot, group: MultiThreadedEventLoopGroup? = nil, accessLog: AccessLogSink?, tracer: RequestTracer? = nil,
        logger: Logger
    ) {
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: snapshot.workers)
        self.ownsGroup = group == nil
        self.logger = logger
        self.connectionLimiter = ConnectionLimiter(limits: snapshot.limits)
        self.listeners = ListenerSet(group: self.group, logger: logger)
        let published = PlaneState.first(for: snapshot, registry: registry)
        self.state = NIOLockedValueBox(
            State(published: published, accessLog: accessLog, tracer: tracer, endpointSets: published.endpoints, policyStates: published.policyStates))
    }

    public var snapshot: RuntimeSnapshot { state.withLockedValue { $0.published.runtime } }

    /// Creates the loop contexts, starts the policies' background work and binds every listener.
    public func start() async throws -> [BoundListener] {
        let (published, snapshot, accessLog, tracer) = state.withLockedValue { ($0.published, $0.published.runtime, $0.accessLog, $0.tracer) }
        var contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>] = [:]
        for loop in group.makeIterator() {
            let limiter = self.connectionLimiter
            contexts[ObjectIdentifier(loop)] = try await loop.submit {
                let context = LoopContext(
                    eventLoop: loop, state: published, accessLog: accessLog.map(AccessLogBuffer.init(sink:)), connectionLimiter: limiter,
                    tracer: tracer)
                context.startSweeping()
                return NIOLoopBound(context, eventLoop: loop)
            }.get()
        }
        // What was published while the contexts were made.
        let latest = state.withLockedValue { state in
            state.contexts = contexts
            state.started = true
            return state.published
        }
        deliver(latest, to: contexts)
        maintainPolicies()

        var bound: [BoundListener] = []
        for listener in snapshot.listeners { bound.append(try await open(listener, snapshot: snapshot, contexts: contexts)) }
        watchCertificates()
        return bound
    }

    private func open(_ listener: ListenerSettings, snapshot: RuntimeSnapshot, contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]) async throws
        -> BoundListener
    {
        do {
            let bound = try await listeners.open(listener, stateDirectory: snapshot.stateDirectory, contexts: contexts)
            logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(listener.address):\(bound.port)"])
            return bound
        } catch {
            throw ListenError(listener: listener.name, address: "\(listener.address):\(listener.port)", underlying: error)
        }
    }

    /// Brings the listeners to `snapshot`'s: new ones are bound; removed ones stop accepting and
    /// the connections they accepted finish their current requests; changed ones take their new
    /// settings (TLS, HTTP/2, redirects) for new connections, or are bound again when their
    /// address changed. Every socket is bound and every certificate made before anything changes:
    /// when one cannot be, the sockets are closed again, the error is thrown and the listeners
    /// stay as they were. The edge limits apply to new connections and requests. Returns the
    /// listeners bound.
    public func applyListeners(_ snapshot: RuntimeSnapshot) async throws -> [BoundListener] {
        let contexts = state.withLockedValue { $0.contexts }
        var prepared: [ListenerSet.Prepared] = []
        var updates: [ListenerSet.Update] = []
        for listener in snapshot.listeners {
            do {
                if let current = listeners.settings(of: listener.name), current.address == listener.address, current.port == listener.port {
                    if current != listener { updates.append(try listeners.prepareUpdate(listener, stateDirectory: snapshot.stateDirectory)) }
                    continue
                }
                prepared.append(try await listeners.prepare(listener, stateDirectory: snapshot.stateDirectory, contexts: contexts))
            } catch {
                for done in prepared { await listeners.discard(done) }
                throw ListenError(listener: listener.name, address: "\(listener.address):\(listener.port)", underlying: error)
            }
        }
        connectionLimiter.update(snapshot.limits)
        let wanted = Set(snapshot.listeners.map(\.name))
        for name in listeners.names where !name.hasPrefix("service/") && !wanted.contains(name) {
            await close(listener: name)
        }
        for update in updates {
            listeners.update(update)
            logger.info("listener changed", metadata: ["listener": "\(update.settings.name)"])
        }
        for done in prepared {
            // The connections of the socket it replaces drain before the new one accepts any.
            if await listeners.commit(done) { await drainConnections(of: done.settings.name) }
            await listeners.startAccepting(done)
            logger.info("listening", metadata: ["listener": "\(done.settings.name)", "address": "\(done.settings.address):\(done.bound.port)"])
        }
        return prepared.map(\.bound)
    }

    /// Stops accepting on a listener; the connections it accepted finish their current
    /// requests and close.
    private func close(listener name: String) async {
        await listeners.close(name)
        await drainConnections(of: name)
        logger.info("listener closed", metadata: ["listener": "\(name)"])
    }

    private func drainConnections(of listener: String) async {
        for context in state.withLockedValue({ Array($0.contexts.values) }) {
            try? await context.eventLoop.submit { context.value.drainConnections(of: listener) }.get()
        }
    }

    /// Checks the certificate files every second; replaced files serve new connections.
    private func watchCertificates() {
        let logger = self.logger
        let listeners = self.listeners
        let failures = NIOLockedValueBox<[String: String]>([:])
        let task = group.next().scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            for (name, context) in listeners.tlsContexts {
                do {
                    if try context.reloadIfChanged() {
                        failures.withLockedValue { $0[name] = nil }
                        logger.info("certificates reloaded", metadata: ["listener": "\(name)"])
                    }
                } catch {
                    let reason = "\(error)"
                    // Logged once per distinct failure, not every second while a file is broken.
                    if failures.withLockedValue({ $0.updateValue(reason, forKey: name) }) != reason {
                        logger.error("certificates not reloaded, keeping the current ones", metadata: ["listener": "\(name)", "error": "\(reason)"])
                    }
                }
            }
        }
        state.withLockedValue { $0.certificateWatch = task }
    }

    /// The certificates a TLS listener serves, for tests and `gantry get`.
    public func tlsContext(forListener name: String) -> TLSServerContext? {
        listeners.tlsContext(forListener: name)
    }

    /// Listeners opened from now on (``start()``, cluster IPs) do not accept until
    /// ``acceptConnections()``: a gantry taking over from another holds its connections back until
    /// its pods are its own, while the other accepts on the same sockets.
    public func holdConnections() {
        listeners.holdAccepting()
    }

    public func acceptConnections() async {
        await listeners.acceptAll()
    }

    /// Binds a service's cluster IP: a listener that sends every request to that service (by
    /// name, in the configuration each request arrives under).
    public func bindClusterIP(service: String, address: String, port: Int) async throws -> BoundListener {
        let (snapshot, contexts) = state.withLockedValue { ($0.published.runtime, $0.contexts) }
        let listener = ListenerSettings(name: "service/\(service)", address: address, port: port, scheme: "http", service: service)
        let bound = try await listeners.open(listener, stateDirectory: snapshot.stateDirectory, contexts: contexts)
        logger.info("cluster IP", metadata: ["service": "\(service)", "address": "\(address):\(bound.port)"])
        return bound
    }

    /// Closes a service's cluster IP; requests in flight through it finish.
    public func closeClusterIP(service: String) async {
        await close(listener: "service/\(service)")
    }

    /// Access-log lines go to `sink` from now on (none when nil); lines already written are flushed first.
    public func setAccessLog(_ sink: AccessLogSink?) {
        let (old, contexts) = state.withLockedValue { state in
            defer { state.accessLog = sink }
            return (state.accessLog, Array(state.contexts.values))
        }
        for context in contexts {
            context.eventLoop.execute { context.value.setAccessLog(sink.map(AccessLogBuffer.init(sink:))) }
        }
        old?.sync()
    }

    /// Requests that start from now on record their spans with `tracer` (none when nil).
    public func setTracer(_ tracer: RequestTracer?) {
        let contexts = state.withLockedValue { state in
            state.tracer = tracer
            return Array(state.contexts.values)
        }
        for context in contexts {
            context.eventLoop.execute { context.value.setTracer(tracer) }
        }
    }

    /// Returns once every loop has run what was sent to it before the call: endpoint sets and
    /// snapshots published before it are in use.
    public func settled() async {
        for context in state.withLockedValue({ Array($0.contexts.values) }) {
            try? await context.eventLoop.submit {}.get()
        }
    }

    /// Closes every tunnel (WebSocket) to an endpoint whose drain period is over, on all loops,
    /// with a close frame saying 1001 (going away) to each side; returns once they have.
    public func closeTunnels(to endpoint: EndpointAddress) async {
        for context in state.withLockedValue({ Array($0.contexts.values) }) {
            try? await context.eventLoop.submit { context.value.closeTunnels(to: endpoint) }.get()
        }
    }

    /// Requests in flight to an endpoint, on all loops.
    public func inFlight(_ endpoint: EndpointAddress) -> Int {
        registry.state(for: endpoint).inFlight
    }

    /// Requests ever sent to an endpoint.
    public func requestCount(_ endpoint: EndpointAddress) -> Int {
        registry.state(for: endpoint).requests
    }

    /// Makes `snapshot` the configuration on every loop. Requests in flight keep the one they
    /// started with. A policy whose identity is unchanged keeps its state; a new or changed one
    /// starts afresh, and one no longer used stops its background work. Services keep the
    /// endpoints the control plane gave them, those with endpoints in the file take the file's,
    /// and services no longer in the file lose theirs. Listeners change with ``applyListeners(_:)``.
    public func publish(_ snapshot: RuntimeSnapshot) {
        let (published, contexts) = state.withLockedValue { state -> (PlaneState, [ObjectIdentifier: NIOLoopBound<LoopContext>]) in
            let previous = state.published.runtime
            var sets: [String: EndpointSet] = [:]
            for service in snapshot.services {
                let old = previous.service(named: service.name)
                if !service.staticEndpoints.isEmpty, old?.staticEndpoints != service.staticEndpoints || state.endpointSets[service.name] == nil {
                    sets[service.name] = EndpointSet(kind: service.balancer, endpoints: service.staticEndpoints.map(registry.state(for:)))
                } else if let set = state.endpointSets[service.name] {
                    sets[service.name] = set.balancer.kind == service.balancer ? set : EndpointSet(kind: service.balancer, endpoints: set.endpoints)
                }
            }
            state.endpointSets = sets
            var policyStates: [PolicyIdentity: any Sendable] = [:]
            for policy in snapshot.policies {
                policyStates[policy.identity] = state.policyStates[policy.identity] ?? policy.makeSharedState()
            }
            state.policyStates = policyStates
            state.published = PlaneState(
                version: state.published.version + 1, runtime: snapshot, endpoints: sets,
                sharedPolicyStates: snapshot.policies.map { policyStates[$0.identity]! })
            return (state.published, state.contexts)
        }
        deliver(published, to: contexts)
        maintainPolicies()
    }

    /// Replaces a service's endpoints on every loop (pods coming and going, health changes).
    public func setEndpoints(_ addresses: [EndpointAddress], forService name: String) {
        let (published, contexts) = state.withLockedValue { state -> (PlaneState, [ObjectIdentifier: NIOLoopBound<LoopContext>]) in
            let kind = state.published.runtime.service(named: name)?.balancer ?? .roundRobin
            let set = EndpointSet(kind: kind, endpoints: addresses.map(registry.state(for:)))
            // An endpoint the control plane brings (back) is healthy: forget its ejections.
            let before = Set(state.endpointSets[name]?.endpoints.map(\.address) ?? [])
            for endpoint in set.endpoints where !before.contains(endpoint.address) { endpoint.readmit() }
            state.endpointSets[name] = set
            let previous = state.published
            state.published = PlaneState(
                version: previous.version + 1, runtime: previous.runtime, endpoints: state.endpointSets,
                sharedPolicyStates: previous.sharedPolicyStates)
            return (state.published, state.contexts)
        }
        deliver(published, to: contexts)
    }

    private func deliver(_ published: PlaneState, to contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]) {
        for context in contexts.values {
            context.eventLoop.execute { context.value.install(published) }
        }
    }

    /// Starts the background work of policies that are new, and stops that of policies no
    /// configuration uses any more.
    private func maintainPolicies() {
        let environment = ControlPolicyEnvironment(plane: self)
        let logger = self.logger
        state.withLockedValue { state in
            guard state.started else { return }
            for (identity, task) in state.maintenance where state.policyStates[identity] == nil {
                task.cancel()
                state.maintenance[identity] = nil
            }
            for policy in state.published.runtime.policies where state.maintenance[policy.identity] == nil {
                let shared = state.policyStates[policy.identity]!
                state.maintenance[policy.identity] = Task {
                    await policy.maintain(shared: shared, environment: environment) { entry in
                        var metadata: Logger.Metadata = [:]
                        for (key, value) in entry.metadata { metadata[key] = "\(value)" }
                        switch entry.level {
                        case .info: logger.info("\(entry.message)", metadata: metadata)
                        case .warning: logger.warning("\(entry.message)", metadata: metadata)
                        }
                    }
                }
            }
        }
    }

    public func endpoints(forService name: String) -> EndpointSet? {
        state.withLockedValue { $0.endpointSets[name] }
    }

    /// The data-plane counters, added up over all loops.
    public func counters() async -> ProxyCounters {
        var total = ProxyCounters()
        for counters in await fromEachLoop({ $0.metrics.values }) { total.add(counters) }
        return total
    }

    /// Access-log lines dropped because they could not be written (a full disk), by the
    /// current access log.
    public var accessLogDroppedLines: Int {
        state.withLockedValue { $0.accessLog }?.droppedLines ?? 0
    }

    /// The request series (requests, latency per stage, local answers), added up over all loops.
    public func requestSeries() async -> RequestSeries {
        var total = RequestSeries()
        for series in await fromEachLoop({ $0.requestMetrics.series }) { total.add(series) }
        return total
    }

    /// What `read` finds on each loop, read on the loop; a loop that has stopped is left out.
    private func fromEachLoop<Value: Sendable>(_ read: @escaping @Sendable (LoopContext) -> Value) async -> [Value] {
        var values: [Value] = []
        for context in state.withLockedValue({ Array($0.contexts.values) }) {
            if let value = try? await context.eventLoop.submit({ read(context.value) }).get() { values.append(value) }
        }
        return values
    }

    /// Response bytes waiting in gantry for slow clients, on all loops: what backpressure bounds.
    public func bufferedResponseBytes() async throws -> Int {
        var total = 0
        for context in state.withLockedValue({ Array($0.contexts.values) }) {
            total += try await context.eventLoop.submit {
                context.value.connections.values.reduce(0) { $0 + $1.bufferedOutboundBytes }
            }.get()
        }
        return total
    }

    /// Open client connections on all loops.
    public func connectionCount() async -> Int {
        await fromEachLoop({ $0.connections.count + $0.http2Sessions.count }).reduce(0, +)
    }

    /// Stops accepting, lets requests in flight finish (closing each connection after its
    /// response), and after `gracePeriod` closes whatever is left.
    /// - Parameter idleLinger: how long idle HTTP/1 keep-alive connections stay open for one
    ///   more request (answered with `Connection: close`) before they are closed. A client that
    ///   sends on a connection as it closes loses that request; when another gantry has taken
    ///   over the listeners, this lets busy clients move to it without one.
    public func drain(gracePeriod: Duration, idleLinger: Duration = .zero) async {
        let contexts = state.withLockedValue { Array($0.contexts.values) }
        let maintenance = state.withLockedValue { state in
            state.certificateWatch?.cancel()
            defer { state.maintenance = [:] }
            return state.maintenance.values
        }
        for task in maintenance { task.cancel() }
        await listeners.closeAll()
        let closingIdle = idleLinger == .zero
        for context in contexts { context.eventLoop.execute { context.value.beginDraining(closingIdle: closingIdle) } }
        let deadline = ContinuousClock.now + gracePeriod
        if !closingIdle {
            let lingerEnd = min(deadline, ContinuousClock.now + idleLinger)
            while ContinuousClock.now < lingerEnd, await connectionCount() > 0 {
                try? await Task.sleep(for: .milliseconds(20))
            }
            for context in contexts { context.eventLoop.execute { context.value.beginDraining(closingIdle: true) } }
        }
        while ContinuousClock.now < deadline, await connectionCount() > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = await connectionCount()
        if left > 0 { logger.warning("closing connections still open after the grace period", metadata: ["connections": "\(left)"]) }
        for context in contexts {
            try? await context.eventLoop.submit {
                for connection in context.value.connections.values { connection.abort() }
                context.value.stop()
            }.get()
        }
        state.withLockedValue { $0.accessLog }?.sync()
    }

    /// Drains with no grace and releases the event loops (if this data plane created them).
    public func shutdown() async {
        await drain(gracePeriod: .zero)
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}
