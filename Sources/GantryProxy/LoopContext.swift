import GantryConfig
import GantryCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Everything one event loop needs to proxy a request, touched only on that loop: the current
/// snapshot, each service's endpoint set and round-robin cursor, the upstream connection pool,
/// the random source and the access-log buffer. Nothing here takes a lock.
///
/// Exclusivity: the release build does not check at run time that accesses to a class's stored
/// properties never overlap (Package.swift says why); debug builds, and so the tests, do.
final class LoopContext {
    let eventLoop: any EventLoop
    private(set) var snapshot: RuntimeSnapshot {
        // Converted once: a `Duration`'s components are a 128-bit division, and a connection's
        // idle deadline is set after every response.
        didSet { idleTimeout = TimeAmount(snapshot.idleTimeout) }
    }
    /// The snapshot's idle timeout for client connections.
    private(set) var idleTimeout: TimeAmount
    /// Endpoint sets by service index in `snapshot`.
    private(set) var endpoints: [EndpointSet]
    private var endpointsByName: [String: EndpointSet]
    var cursors: [Int]
    /// Lent out through ``drawRandom(_:)`` only.
    private var random = FastRandom()
    let pool: UpstreamPool
    let accessLog: AccessLogBuffer?
    let policies: PolicyEngine
    let connectionLimiter: ConnectionLimiter
    let metrics = LoopCounters()
    let requestMetrics: RequestMetrics
    let tracer: RequestTracer?
    /// `tracer != nil`, read on every request without asking the optional's value witness.
    let isTracing: Bool
    let spareWriteBuffer = HTTP1MessageWriter.SpareBuffer()
    /// Ended exchanges, to start new requests with (``DownstreamHandler/newExchange(plan:method:)``):
    /// kept by the loop rather than by each connection, so idle connections hold none. Emptied
    /// by ``stop()``: each exchange refers back to this context.
    var spareExchanges: [ProxyExchange] = []
    static let maxSpareExchanges = 256

    /// Open client connections (and HTTP/2 streams), for their timeouts and their exchanges', and
    /// for draining.
    var connections: [ObjectIdentifier: DownstreamHandler] = [:]
    /// Connections speaking HTTP/2: their streams are in `connections`; these close once the
    /// streams have drained.
    var http2Sessions: [ObjectIdentifier: any Channel] = [:]
    /// Set when the data plane drains: no new keep-alive, idle connections closed.
    private(set) var draining = false
    private var sweeper: RepeatedTask?

    /// How often timeouts are checked: their resolution.
    static let sweepInterval = TimeAmount.milliseconds(100)

    init(
        eventLoop: any EventLoop, snapshot: RuntimeSnapshot, endpointsByName: [String: EndpointSet],
        accessLog: AccessLogBuffer?, gateway: GatewayState, connectionLimiter: ConnectionLimiter,
        tracer: RequestTracer? = nil
    ) {
        self.tracer = tracer
        self.isTracing = tracer != nil
        self.requestMetrics = RequestMetrics()
        self.eventLoop = eventLoop
        self.snapshot = snapshot
        self.idleTimeout = TimeAmount(snapshot.idleTimeout)
        self.endpointsByName = endpointsByName
        self.endpoints = snapshot.services.map { endpointsByName[$0.name] ?? .empty($0.balancer) }
        self.cursors = Array(repeating: 0, count: snapshot.services.count)
        self.pool = UpstreamPool()
        self.accessLog = accessLog
        self.policies = PolicyEngine(shared: gateway)
        self.connectionLimiter = connectionLimiter
        // Start round robin at a different place on each loop, as Envoy does per worker.
        for index in cursors.indices { cursors[index] = drawRandom { Int.random(in: 0..<1024, using: &$0) } }
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

    func newRequestID() -> RequestIdentifier {
        drawRandom { RequestIdentifier.random(using: &$0) }
    }

    /// Seconds since 1970, for log timestamps.
    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    func startSweeping() {
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        sweeper = eventLoop.scheduleRepeatedTask(initialDelay: Self.sweepInterval, delay: Self.sweepInterval) { _ in
            bound.value.sweep()
        }
    }

    func stop() {
        for session in http2Sessions.values { session.close(promise: nil) }
        http2Sessions.removeAll()
        sweeper?.cancel()
        sweeper = nil
        pool.closeAll()
        spareExchanges.removeAll()
        accessLog?.flush()
    }

    func install(_ snapshot: RuntimeSnapshot) {
        self.snapshot = snapshot
        endpoints = snapshot.services.map { endpointsByName[$0.name] ?? .empty($0.balancer) }
        cursors = Array(repeating: 0, count: snapshot.services.count)
    }

    /// Idle pooled connections to endpoints that left are closed, as Envoy drains connections to
    /// removed hosts: a pod that is draining then sees only its requests in flight.
    func install(endpoints set: EndpointSet, forService name: String) {
        if let old = endpointsByName[name] {
            let kept = Set(set.endpoints.map(\.address))
            for endpoint in old.endpoints where !kept.contains(endpoint.address) { pool.closeIdle(to: endpoint.address) }
        }
        endpointsByName[name] = set
        if let index = snapshot.services.firstIndex(where: { $0.name == name }) {
            endpoints[index] = set
        }
    }

    func beginDraining() {
        draining = true
        for connection in connections.values { connection.drain() }
    }

    /// Checks every deadline on this loop: client keep-alive idle timeouts, upstream response and
    /// stream idle timeouts, and pooled upstream connections past their idle time. One repeated
    /// task per loop is cheaper than a scheduled task per request.
    private func sweep() {
        let now = NIODeadline.now()
        for connection in connections.values { connection.checkTimeouts(now: now) }
        pool.closeExpired(now: now)
        accessLog?.flushIfStale(now: now)
    }
}
