/// Where a consistent-hash balancer takes its key from.
public enum HashKey: Sendable, Hashable, CustomStringConvertible {
    case clientIP
    /// Lowercased header name.
    case header(String)
    case cookie(String)

    public var description: String {
        switch self {
        case .clientIP: return "clientIP"
        case .header(let name): return "header \(name)"
        case .cookie(let name): return "cookie \(name)"
        }
    }
}

/// A service's load-balancing policy.
public enum BalancerKind: Sendable, Hashable, CustomStringConvertible {
    case roundRobin
    /// Power of two choices on in-flight requests (Envoy's `LEAST_REQUEST` with equal weights).
    case leastRequest
    case random
    /// Maglev over the key's hash.
    case consistentHash(HashKey)

    public var description: String {
        switch self {
        case .roundRobin: return "roundRobin"
        case .leastRequest: return "leastRequest"
        case .random: return "random"
        case .consistentHash(let key): return "consistentHash(\(key))"
        }
    }
}

/// The endpoints one request must not be sent to again (those a retry already tried).
public struct TriedEndpoints: Sendable, Equatable {
    private var low: UInt64 = 0
    /// Indices from 64 on; nil until one is inserted, so that the usual set, made and dropped
    /// for every request, holds no reference to retain and release.
    private var high: Set<Int>?

    public init() {}

    public var isEmpty: Bool { low == 0 && high == nil }
    public var count: Int { low.nonzeroBitCount + (high?.count ?? 0) }

    public mutating func insert(_ index: Int) {
        if index < 64 { low |= 1 << UInt64(index) } else if high == nil { high = [index] } else { high!.insert(index) }
    }

    @inline(__always)
    public func contains(_ index: Int) -> Bool {
        index < 64 ? low & (1 << UInt64(index)) != 0 : high?.contains(index) ?? false
    }
}

/// In-flight request counts, as the data plane keeps them (atomics) or a test sets them.
public protocol EndpointLoads {
    func inFlight(_ index: Int) -> Int
}

/// Picks an endpoint for a request. Built once per endpoint set; picking takes no locks and
/// allocates nothing. The only mutable state, the round-robin cursor, belongs to the caller
/// (one per event loop), and randomness is a parameter so tests can seed it.
public struct Balancer: Sendable {
    public let kind: BalancerKind
    public let count: Int
    private let maglev: MaglevTable?

    /// - Parameter names: the endpoints' stable names (addresses), in endpoint-index order.
    public init(kind: BalancerKind, names: [String]) {
        self.kind = kind
        self.count = names.count
        if case .consistentHash = kind, !names.isEmpty {
            self.maglev = MaglevTable(names: names)
        } else {
            self.maglev = nil
        }
    }

    /// - Parameters:
    ///   - cursor: the caller's round-robin position.
    ///   - key: the request's hash key (consistent hashing); nil when the request has none, in
    ///     which case the pick is random, as Envoy does.
    ///   - tried: endpoints to avoid. When every endpoint was tried, any may be picked again.
    /// - Returns: an endpoint index, or nil when there are no endpoints.
    public func pick<R: RandomNumberGenerator>(
        cursor: inout Int, key: UInt64? = nil, tried: TriedEndpoints = TriedEndpoints(),
        loads: some EndpointLoads, random: inout R
    ) -> Int? {
        guard count > 0 else { return nil }
        let avoid = tried.isEmpty || tried.count >= count ? TriedEndpoints() : tried
        switch kind {
        case .roundRobin:
            for _ in 0..<count {
                let index = cursor % count
                cursor = (cursor &+ 1) & Int.max
                if !avoid.contains(index) { return index }
            }
            return nil
        case .random:
            return randomPick(avoid, &random)
        case .leastRequest:
            guard let first = randomPick(avoid, &random) else { return nil }
            guard count - avoid.count > 1 else { return first }
            var second = first
            while second == first { second = randomPick(avoid, &random)! }
            // Ties go to the first draw, which is itself random.
            return loads.inFlight(second) < loads.inFlight(first) ? second : first
        case .consistentHash:
            guard let key, let maglev else { return randomPick(avoid, &random) }
            var probe = 0
            var index = maglev.lookup(key)
            while avoid.contains(index) {
                probe += 1
                index = maglev.lookup(key, probe: probe)
            }
            return index
        }
    }

    private func randomPick<R: RandomNumberGenerator>(_ avoid: TriedEndpoints, _ random: inout R) -> Int? {
        let available = count - avoid.count
        guard available > 0 else { return nil }
        var n = Int.random(in: 0..<available, using: &random)
        if avoid.isEmpty { return n }
        for index in 0..<count where !avoid.contains(index) {
            if n == 0 { return index }
            n -= 1
        }
        return nil
    }
}

/// Loads for balancers that ignore them.
public struct NoLoads: EndpointLoads {
    public init() {}
    public func inFlight(_ index: Int) -> Int { 0 }
}
