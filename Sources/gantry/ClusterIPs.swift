import GantryConfig
import GantryHandover
import GantryPods
import GantryProxy
import Logging
import NIOConcurrencyHelpers

/// The services' stable addresses: each service with a cluster IP gets one (the file's, or the
/// first free one from 127.0.10.1 on, a block this gantry holds while it runs) and a listener
/// there that balances over the service's endpoints. A new configuration binds the new
/// services', binds a changed one again, and closes a removed service's (requests in flight
/// through it finish).
final class ClusterIPs: Sendable {
    private struct Assignment: Sendable {
        let spec: ClusterIP
        let address: String
        let port: Int
        /// Taken from the pool, and given back when the service goes.
        let allocated: Bool
    }

    private let plane: DataPlane
    private let logger: Logger
    private let pool = LoopbackAddresses(blocks: 10...99)
    private let assignments = NIOLockedValueBox<[String: Assignment]>([:])

    init(plane: DataPlane, logger: Logger) {
        self.plane = plane
        self.logger = logger
    }

    /// `host:port` by service name.
    var addresses: [String: String] {
        assignments.withLockedValue { $0.mapValues { "\($0.address):\($0.port)" } }
    }

    /// Closes the cluster IPs of services that are gone from `services` or whose address
    /// changed; requests in flight through them finish.
    func closeStale(keeping services: [ServiceSettings]) async {
        let current = assignments.withLockedValue { $0 }
        for (name, assignment) in current where !services.contains(where: { $0.name == name && $0.clusterIP == assignment.spec }) {
            await plane.closeClusterIP(service: name)
            if assignment.allocated { pool.release(assignment.address) }
            assignments.withLockedValue { $0[name] = nil }
        }
    }

    /// At start: binds every service's cluster IP; a fixed address that cannot be bound is an
    /// error.
    func bindAll(_ services: [ServiceSettings]) async throws {
        _ = try await bind(services, strict: true)
    }

    /// In a change: binds the cluster IPs of `services` that have none yet (one whose address
    /// changed is bound again once ``closeStale(keeping:)`` has closed the old one). One that
    /// cannot be bound is a warning, and the service goes without one. Returns the warnings.
    func bindNew(_ services: [ServiceSettings]) async -> [String] {
        (try? await bind(services, strict: false)) ?? []  // not strict: never throws
    }

    private func bind(_ services: [ServiceSettings], strict: Bool) async throws -> [String] {
        var warnings: [String] = []
        for service in services where assignments.withLockedValue({ $0[service.name] == nil }) {
            let address: String
            let port: Int
            let allocated: Bool
            switch service.clusterIP {
            case .none: continue
            case .fixed(let fixed, let fixedPort): (address, port, allocated) = (fixed, fixedPort, false)
            case .automatic(let automaticPort):
                // Taking over from another gantry: the address its socket is bound to, which the
                // pods taken over know from their environment.
                if let inherited = Handover.shared.inheritedAddress("listener/service/\(service.name)"), inherited.port == automaticPort,
                    pool.claim(inherited.host)
                {
                    (address, port, allocated) = (inherited.host, automaticPort, true)
                    break
                }
                guard let free = pool.allocate(port: automaticPort) else {
                    warnings.append("no free cluster IP for service \(service.name)")
                    logger.warning("no free cluster IP", metadata: ["service": "\(service.name)"])
                    continue
                }
                (address, port, allocated) = (free, automaticPort, true)
            }
            do {
                let bound = try await plane.bindClusterIP(service: service.name, address: address, port: port)
                assignments.withLockedValue { $0[service.name] = Assignment(spec: service.clusterIP, address: bound.host, port: bound.port, allocated: allocated) }
            } catch {
                if allocated { pool.release(address) }
                if strict { throw error }
                warnings.append("service \(service.name) has no cluster IP: cannot listen on \(address):\(port): \(error)")
                logger.warning("cannot bind cluster IP", metadata: ["service": "\(service.name)", "error": "\(error)"])
            }
        }
        return warnings
    }
}
