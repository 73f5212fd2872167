import GantryConfig
import GantryCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Everything one event loop needs to proxy a request, touched only on that loop: the current
/// snapshot, the state kept across snapshots, the upstream connection pool, the random source,
/// the counters and the access-log buffer. Nothing here takes a lock.
///
/// Exclusivity: the release build does not check at run time that accesses to a class's stored
/// properties never overlap (Package.swift says why); debug builds, and so the tests, do.
final class LoopContext {
    let eventLoop: any EventLoop
    /// What a request arriving now takes and keeps (``RequestContext/snapshot``).
    private(set) var current: LoopSnapshot {
        // Converted once: a `Duration`'s components are a 128-bit division, and a connection's
        // idle deadline is set after every response.
        didSet { idleTimeout = TimeAmount(current.runtime.idleTimeout) }
    }
    /// The snapshot's idle timeout for client connections.
    private(set) var idleTimeout: TimeAmount
    private var registry = LoopRegistry()
    /// Lent out through ``drawRandom(_:)`` only.
    private var random = FastRandom()
    /// Idle connections to plain-HTTP endpoints; those over TLS are in ``LoopRegistry/securePools``.
    let pool: UpstreamPool
    /// Opens upstream connections (sockets; an in-memory pipe in tests).
    let connector: any UpstreamConnector
    private(set) var accessLog: AccessLogBuffer?
    let connectionLimiter: ConnectionLimiter
    let metrics = LoopCounters()
    let requestMetrics = RequestMetrics()
    private(set) var tracer: RequestTracer?
    /// `tracer != nil`, read on every request without asking the optional's value witness.
    private(set) var isTracing: Bool
    let spareWriteBuffer = HTTP1MessageWriter.SpareBuffer()
    /// What policies may ask of the world from this loop.
    private(set) var policyEnvironment: LoopPolicyEnvironment!
    /// Ended exchanges, to start new requests with (``takeExchange()``): kept by the loop rather
    /// than by each connection, so idle connections hold none. Emptied by ``stop()``: each
    /// exchange refers back to this context.
    private var spareExchanges: [ProxyExchange] = []
    static let maxSpareExchanges = 256

    /// Open client connections and HTTP/2 streams, for their timeouts and their exchanges', and
    /// for draining.
    var connections: [ObjectIdentifier: any Downstream] = [:]
    /// Connections speaking HTTP/2: their streams are in `connections`; these close once the
    /// streams have drained.
    var http2Sessions: [ObjectIdentifier: HTTP2ConnectionHandler] = [:]
    /// Connections to flush once this tick's events have been handled (``flushAtEndOfTick(_:)``),
    /// and the array they are swapped with when that happens.
    private var flushesDue: [any TickFlushable] = []
    private var flushing: [any TickFlushable] = []
    /// Set when the data plane drains: no new keep-alive, idle connections closed.
    private(set) var draining = false
    private var sweeper: RepeatedTask?

    /// How often timeouts are checked: their resolution.
    static let sweepInterval = TimeAmount.milliseconds(100)

    init(
        eventLoop: any EventLoop, state: PlaneState, accessLog: AccessLogBuffer?, connectionLimiter: ConnectionLimiter,
        tracer: RequestTracer? = nil, connector: any UpstreamConnector = SocketConnector()
    ) {
        self.eventLoop = eventLoop
        self.tracer = tracer
        self.isTracing = tracer != nil
        self.accessLog = accessLog
        self.connectionLimiter = connectionLimiter
        self.connector = connector
        self.idleTimeout = TimeAmount(state.runtime.idleTimeout)
        var random = FastRandom()
        var registry = LoopRegistry()
        let gateway = LoopGateway(policies: registry.bindPolicies(of: state), routeCount: state.runtime.routeSettings.count)
        // Round robin starts at a different place on each loop, as Envoy does per worker.
        let plainPool = UpstreamPool()
        let clusters = registry.clusters(for: state, plainPool: plainPool) { Int.random(in: 0..<1024, using: &random) }
        self.pool = plainPool
        self.current = LoopSnapshot(runtime: state.runtime, gateway: gateway, clusters: clusters, version: state.version)
        self.registry = registry
        self.random = random
        self.policyEnvironment = LoopPolicyEnvironment(loop: self)
    }

    /// Makes `state` current, unless this loop already has a newer one. Requests in flight keep
    /// the snapshot they took. Idle pooled connections to endpoints no service has any more
    /// are closed, as Envoy drains connections to removed hosts: a pod that is draining then
    /// sees only its requests in flight.
    func install(_ state: PlaneState) {
        guard state.version > current.version else { return }
        let previous = current
        let gateway =
            state.runtime === previous.runtime
            ? previous.gateway : LoopGateway(policies: registry.bindPolicies(of: state), routeCount: state.runtime.routeSettings.count)
        let clusters = registry.clusters(for: state, plainPool: pool) { drawRandom { Int.random(in: 0..<1024, using: &$0) } }
        current = LoopSnapshot(runtime: state.runtime, gateway: gateway, clusters: clusters, version: state.version)
        let kept = Set(clusters.flatMap { $0.endpoints.endpoints.map(\.address) })
        for cluster in previous.clusters {
            for endpoint in cluster.endpoints.endpoints where !kept.contains(endpoint.address) {
                for pool in pools { pool.closeIdle(to: endpoint.address) }
                for pool in registry.http2Pools.values { pool.closeIdle(to: endpoint.address) }
            }
        }
    }

    /// Runs `body` with the loop's random source. It is copied out and back rather than lent
    /// `inout` from here: a class's stored property lent across a call makes every access to
    /// it a run-time exclusivity check, several per request. Not to be nested: the inner draw
    /// would be lost when the outer one writes the source back.
    func drawRandom<T>(_ body: (inout FastRandom) -> T) -> T {
        var generator = random
        defer { random = generator }
        return body(&generator)
    }

    func newRequestID() -> RequestIdentifier {
        drawRandom { RequestIdentifier.random(using: &$0) }
    }

    /// Seconds since 1970, for log timestamps.
    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    // MARK: Flushing

    /// Flushes `connection` after the events of this tick: NIO runs the loop's tasks once it has
    /// handled every ready socket, so what several upstream reads wrote to one connection leaves
    /// in one write. The caller asks once per tick (``HTTP2FrameWriter/flushDue``).
    func flushAtEndOfTick(_ connection: any TickFlushable) {
        if flushesDue.isEmpty {
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            eventLoop.execute { bound.value.flushDueConnections() }
        }
        flushesDue.append(connection)
    }

    private func flushDueConnections() {
        swap(&flushesDue, &flushing)
        for connection in flushing { connection.flushNow() }
        flushing.removeAll(keepingCapacity: true)
    }

    // MARK: Exchanges

    /// An exchange for a new request: an ended one of the loop's that nothing else holds any
    /// more (a connection attempt or a policy's wait still under way may hold one, which is then
    /// let go), or a new one. Allocated per request, exchanges were freed in bursts (one per
    /// connection with a request in flight) larger than the allocator's per-size cache, and
    /// allocating and freeing them cost more than setting one up again.
    func takeExchange() -> ProxyExchange {
        while var spare = spareExchanges.popLast() {
            if isKnownUniquelyReferenced(&spare) { return spare }
        }
        return ProxyExchange(loop: self)
    }

    /// Takes back an ended (and logged) exchange, without the request's head.
    func keepForReuse(_ exchange: ProxyExchange) {
        exchange.letGoOfRequest()
        if spareExchanges.count < Self.maxSpareExchanges { spareExchanges.append(exchange) }
    }

    /// Counts an answer gantry gave itself: in its reason's series and, for the reasons that
    /// have one, its counter.
    func recordLocalAnswer(_ reason: LocalReason, status: Int) {
        requestMetrics.recordLocal(reason: reason, status: status)
        switch reason {
        case .noRoute: metrics.add(.noRoute)
        case .unauthorized: metrics.add(.unauthorized)
        case .rateLimited: metrics.add(.rateLimited)
        case .httpsRedirect: metrics.add(.redirects)
        case .noEndpoint: metrics.add(.noEndpoint)
        default: break
        }
    }

    // MARK: Upstream addresses and stores

    private var redisClients: [String: RedisClient] = [:]

    /// This loop's connection to a Redis server (for shared rate limits).
    func redis(host: String, port: Int) -> RedisClient {
        let key = "\(host):\(port)"
        if let client = redisClients[key] { return client }
        let client = RedisClient(eventLoop: eventLoop, host: host, port: port)
        redisClients[key] = client
        return client
    }

    private var socketAddresses: [EndpointAddress: SocketAddress] = [:]

    /// The socket address of an endpoint, resolved once per loop. IP literals need no lookup;
    /// a host name is resolved the first time (blocking, so endpoints should be IPs).
    func socketAddress(for address: EndpointAddress) -> SocketAddress? {
        if let known = socketAddresses[address] { return known }
        let resolved =
            (try? SocketAddress(ipAddress: address.host, port: address.port))
            ?? (try? SocketAddress.makeAddressResolvingHost(address.host, port: address.port))
        if socketAddresses.count > 4096 { socketAddresses.removeAll() }
        socketAddresses[address] = resolved
        return resolved
    }

    /// Every pool of idle upstream connections on this loop.
    private var pools: [UpstreamPool] { [pool] + registry.securePools.values }

    // MARK: Sweeping and stopping

    func startSweeping() {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: Self.sweepInterval, delay: Self.sweepInterval) { _ in
            bound.value.sweep()
        }
    }

    /// - Parameter closingIdle: close idle HTTP/1 connections now, or leave them for their
    ///   next request, answered with `Connection: close`.
    func beginDraining(closingIdle: Bool = true) {
        draining = true
        for connection in connections.values { connection.drain(closingIdle: closingIdle) }
        for session in http2Sessions.values { session.drain() }
    }

    /// A listener closed: its connections finish their current requests and close.
    func drainConnections(of listener: String) {
        for connection in connections.values where connection.client.listener.name == listener { connection.drain(closingIdle: true) }
        for session in http2Sessions.values where session.listener == listener { session.drain() }
    }

    /// An endpoint is leaving and its drain period is over: its tunnels close, saying why.
    func closeTunnels(to endpoint: EndpointAddress) {
        for connection in connections.values { connection.closeTunnelGoingAway(ifTo: endpoint) }
    }

    func setAccessLog(_ buffer: AccessLogBuffer?) {
        accessLog?.flush()
        accessLog = buffer
    }

    func setTracer(_ tracer: RequestTracer?) {
        self.tracer = tracer
        isTracing = tracer != nil
    }

    func stop() {
        for session in http2Sessions.values { session.close() }
        http2Sessions.removeAll()
        sweeper?.cancel()
        sweeper = nil
        for pool in pools { pool.closeAll() }
        for pool in registry.http2Pools.values { pool.closeAll() }
        spareExchanges.removeAll()
        accessLog?.flush()
    }

    /// Checks every deadline on this loop: client keep-alive idle timeouts, upstream response and
    /// stream idle timeouts, and pooled upstream connections past their idle time. One repeated
    /// task per loop is cheaper than a scheduled task per request.
    private func sweep() {
        let now = NIODeadline.now()
        for connection in connections.values { connection.checkTimeouts(now: now) }
        pool.closeExpired(now: now)
        for pool in registry.securePools.values { pool.closeExpired(now: now) }
        for pool in registry.http2Pools.values { pool.closeExpired(now: now) }
        accessLog?.flushIfStale(now: now)
    }
}

/// A connection whose flush can wait for the end of its loop's tick.
protocol TickFlushable: AnyObject {
    func flushNow()
}
