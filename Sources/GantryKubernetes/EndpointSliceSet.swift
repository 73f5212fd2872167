import Foundation
import GantryCore

/// `discovery.k8s.io/v1` EndpointSlice, the fields gantry reads.
public struct EndpointSlice: Decodable, Sendable, Equatable {
    public struct Metadata: Decodable, Sendable, Equatable {
        public var name: String
        public var resourceVersion: String?
        public var labels: [String: String]?
    }

    public struct Conditions: Decodable, Sendable, Equatable {
        public var ready: Bool?
        public var serving: Bool?
        public var terminating: Bool?
    }

    public struct Endpoint: Decodable, Sendable, Equatable {
        public var addresses: [String]
        public var conditions: Conditions?
    }

    public struct Port: Decodable, Sendable, Equatable {
        public var name: String?
        public var port: Int?
        public var `protocol`: String?
    }

    public var metadata: Metadata
    public var addressType: String?
    public var endpoints: [Endpoint]?
    public var ports: [Port]?

    /// The Service this slice belongs to (`kubernetes.io/service-name`).
    public var service: String? { metadata.labels?["kubernetes.io/service-name"] }

    /// The port gantry sends to: the only TCP port, or the first named as an HTTP port is.
    var port: Int? {
        let tcp = (ports ?? []).filter { ($0.protocol ?? "TCP") == "TCP" && $0.port != nil }
        if tcp.count == 1 { return tcp[0].port }
        for name in ["http", "https", "h2c", "h2", "grpc", "web"] {
            if let match = tcp.first(where: { $0.name == name }) { return match.port }
        }
        return tcp.first?.port
    }
}

/// The EndpointSlices of a namespace as a list and watch report them, and the endpoints each
/// service gets from them, chosen as kube-proxy chooses: the ready endpoints; when none is
/// ready, those that are terminating but still serving (so that a rollout's last pods keep
/// answering until their replacements are ready).
public struct EndpointSliceSet: Sendable {
    private var slices: [String: EndpointSlice] = [:]

    public init() {}

    /// The services whose endpoints the change may have changed.
    @discardableResult
    public mutating func replaceAll(_ list: [EndpointSlice]) -> Set<String> {
        var touched = Set(slices.values.compactMap(\.service))
        slices = [:]
        for slice in list { slices[slice.metadata.name] = slice }
        touched.formUnion(list.compactMap(\.service))
        return touched
    }

    @discardableResult
    public mutating func upsert(_ slice: EndpointSlice) -> Set<String> {
        let old = slices.updateValue(slice, forKey: slice.metadata.name)
        return Set([old?.service, slice.service].compactMap { $0 })
    }

    @discardableResult
    public mutating func remove(_ slice: EndpointSlice) -> Set<String> {
        let old = slices.removeValue(forKey: slice.metadata.name)
        return Set([old?.service, slice.service].compactMap { $0 })
    }

    public var services: Set<String> { Set(slices.values.compactMap(\.service)) }

    /// The service's endpoints to balance over, sorted (a reordering is not a change).
    public func endpoints(forService service: String) -> [EndpointAddress] {
        var ready: Set<EndpointAddress> = []
        var terminatingServing: Set<EndpointAddress> = []
        for slice in slices.values where slice.service == service {
            guard let port = slice.port else { continue }
            for endpoint in slice.endpoints ?? [] {
                guard let address = endpoint.addresses.first else { continue }
                // Nil conditions read as the API documents them: ready unless told otherwise,
                // serving as ready, not terminating.
                let isReady = endpoint.conditions?.ready ?? true
                let serving = endpoint.conditions?.serving ?? isReady
                let terminating = endpoint.conditions?.terminating ?? false
                let target = EndpointAddress(host: address, port: port)
                if isReady, !terminating {
                    ready.insert(target)
                } else if serving, terminating {
                    terminatingServing.insert(target)
                }
            }
        }
        let chosen = ready.isEmpty ? terminatingServing : ready
        return chosen.sorted()
    }
}
