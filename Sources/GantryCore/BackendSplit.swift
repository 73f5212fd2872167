/// A route's traffic split between services by weight (Gateway API `backendRefs`): each request
/// goes to a backend with probability weight ÷ total, drawn at random, or, when the route is
/// sticky, chosen by a hash of the caller's header or cookie, so that one user stays on one
/// version for as long as the weights stay.
public struct BackendSplit: Sendable, Hashable {
    public struct Backend: Sendable, Hashable {
        /// Index of the service in the snapshot.
        public let service: Int
        public let weight: Int

        public init(service: Int, weight: Int) {
            self.service = service
            self.weight = weight
        }
    }

    /// What keeps a caller on one backend.
    public enum Sticky: Sendable, Hashable, CustomStringConvertible {
        /// A header's value (the name lowercased).
        case header(String)
        case cookie(String)

        public var description: String {
            switch self {
            case .header(let name): "header \(name)"
            case .cookie(let name): "cookie \(name)"
            }
        }
    }

    public let backends: [Backend]
    public let sticky: Sticky?
    /// The sum of the weights; above zero.
    public let total: Int

    public init(backends: [Backend], sticky: Sticky? = nil) {
        self.backends = backends
        self.sticky = sticky
        self.total = backends.reduce(0) { $0 + $1.weight }
    }

    /// The service for a draw: any number, reduced modulo the total weight, falls into one
    /// backend's share.
    public func service(for draw: UInt64) -> Int {
        var point = Int(draw % UInt64(max(1, total)))
        for backend in backends {
            if point < backend.weight { return backend.service }
            point -= backend.weight
        }
        return backends[0].service
    }

    /// The service for a sticky key's value: the same value, the same backend.
    public func service(forKey value: some StringProtocol) -> Int {
        service(for: StableHash.hash(value, seed: 0x5EED_57AC))
    }

    /// Each backend's share of the traffic, in whole percent, for display.
    public func percent(of backend: Backend) -> Double {
        (Double(backend.weight) * 1000 / Double(max(1, total))).rounded() / 10
    }
}
