import GantryCore

/// The zone that names services as Kubernetes' DNS does: `<service>.<namespace>.svc.<domain>`
/// answers the service's cluster IP, and SRV `_<port>._tcp.<service>…` (and `_http._tcp.…`,
/// the port's name) its port.
public enum ClusterZone {
    public struct Service: Sendable {
        public let name: String
        public let address: String
        public let port: Int

        public init(name: String, address: String, port: Int) {
            self.name = name
            self.address = address
            self.port = port
        }
    }

    public static func make(domain: DNSName, namespace: String, services: [Service], ttl: UInt32) throws -> DNSZone {
        var records: [DNSResourceRecord] = []
        let namespaceName = try domain.prepending("svc").prepending(namespace)
        for service in services {
            let name = try namespaceName.prepending(service.name)
            if let v4 = IPv4Address(service.address) {
                records.append(DNSResourceRecord(name: name, ttl: ttl, data: .a(v4)))
            } else if let v6 = IPv6Address(service.address) {
                records.append(DNSResourceRecord(name: name, ttl: ttl, data: .aaaa(v6)))
            } else {
                continue
            }
            for portName in ["_\(service.port)", "_http"] {
                records.append(
                    DNSResourceRecord(
                        name: try name.prepending("_tcp").prepending(portName), ttl: ttl,
                        data: .srv(priority: 0, weight: 100, port: UInt16(clamping: service.port), target: name)))
            }
        }
        let soa = DNSZone.SOA(
            mname: try domain.prepending("ns"), rname: try domain.prepending("hostmaster"), serial: UInt32(clamping: records.count),
            minimum: ttl, ttl: ttl)
        return try DNSZone(origin: domain, soa: soa, records: records)
    }
}
