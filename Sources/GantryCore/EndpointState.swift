import Synchronization

/// The live state of one endpoint, shared by every event loop and kept across snapshots and
/// endpoint-set changes (looked up by address in ``EndpointRegistry``). Counters are relaxed
/// atomics: they feed balancing and metrics, never a decision that needs ordering.
public final class EndpointState: Sendable {
    public let address: EndpointAddress
    /// A number no other endpoint state has had in this process: each event loop finds its idle
    /// connections to the endpoint at this index, without hashing the address per request.
    public let slot: Int
    private static let slots = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let total = Atomic<Int>(0)
    private let connectFailures = Atomic<Int>(0)
    private let ejections = Atomic<Int>(0)
    /// Monotonic nanoseconds until which the endpoint is ejected; 0 when it is not.
    private let ejectedUntil = Atomic<UInt64>(0)

    public init(address: EndpointAddress) {
        self.address = address
        self.slot = Self.slots.add(1, ordering: .relaxed).oldValue
    }

    /// Requests sent to this endpoint whose response has not ended.
    public var inFlight: Int { active.load(ordering: .relaxed) }
    /// Requests ever sent to this endpoint.
    public var requests: Int { total.load(ordering: .relaxed) }

    @inline(__always) public func requestStarted() {
        active.add(1, ordering: .relaxed)
        total.add(1, ordering: .relaxed)
    }

    @inline(__always) public func requestEnded() {
        active.subtract(1, ordering: .relaxed)
    }

    // MARK: Outlier detection (times are monotonic nanoseconds)

    public func isEjected(now: UInt64) -> Bool {
        ejectedUntil.load(ordering: .relaxed) > now
    }

    /// The endpoint answered (a response head, an HTTP/2 connection's settings): its run of
    /// failures ends.
    @inline(__always) public func answered() {
        if connectFailures.load(ordering: .relaxed) != 0 { connectFailures.store(0, ordering: .relaxed) }
    }

    /// Records a local-origin failure: a connect that failed, or a response that did not come
    /// in time (a frozen process accepts connections in its kernel backlog and never answers).
    /// - Returns: whether this failure ejected the endpoint.
    public func failedLocally(now: UInt64, policy: OutlierDetection) -> Bool {
        let failures = connectFailures.add(1, ordering: .relaxed).newValue
        guard failures >= policy.consecutiveConnectFailures, !isEjected(now: now) else { return false }
        connectFailures.store(0, ordering: .relaxed)
        let count = ejections.add(1, ordering: .relaxed).newValue
        ejectedUntil.store(now + policy.ejectionNanoseconds(ejections: count), ordering: .relaxed)
        return true
    }

    /// Forgets failures and ejections: the control plane says the endpoint is healthy again.
    public func readmit() {
        connectFailures.store(0, ordering: .relaxed)
        ejections.store(0, ordering: .relaxed)
        ejectedUntil.store(0, ordering: .relaxed)
    }
}

/// An immutable set of endpoints for one service and the balancer built for it. A new set is
/// built and published to every event loop when endpoints change; requests in flight keep the
/// set they started with.
public final class EndpointSet: Sendable, EndpointLoads {
    public let endpoints: [EndpointState]
    public let balancer: Balancer

    public init(kind: BalancerKind, endpoints: [EndpointState]) {
        self.endpoints = endpoints
        self.balancer = Balancer(kind: kind, names: endpoints.map(\.address.description))
    }

    public static func empty(_ kind: BalancerKind) -> EndpointSet {
        EndpointSet(kind: kind, endpoints: [])
    }

    public func inFlight(_ index: Int) -> Int { endpoints[index].inFlight }

    /// The indices a request must not pick: those it already tried and, unless that leaves
    /// nothing to pick, those ejected by outlier detection.
    public func excluded(tried addresses: [EndpointAddress], now: UInt64) -> TriedEndpoints {
        let tried = tried(addresses)
        var excluded = tried
        for index in endpoints.indices where endpoints[index].isEjected(now: now) { excluded.insert(index) }
        return excluded.count < endpoints.count ? excluded : tried
    }

    /// The indices in this set of endpoints already tried, by address.
    public func tried(_ addresses: [EndpointAddress]) -> TriedEndpoints {
        var tried = TriedEndpoints()
        guard !addresses.isEmpty else { return tried }
        for (index, endpoint) in endpoints.enumerated() where addresses.contains(endpoint.address) {
            tried.insert(index)
        }
        return tried
    }
}
