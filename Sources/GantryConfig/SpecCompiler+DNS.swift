import Foundation
import GantryCore

extension SpecCompiler {
    static let dnsTypes = ["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "NS"]

    /// `dns:` the listen address and the file's zones, built into `DNSZone`s here so that every
    /// problem (a bad address, a name outside its zone, a CNAME beside other records) is reported
    /// with its line before anything starts.
    mutating func compileDNS(_ spec: DNSSpec, listeners: [ListenerSettings], at path: SpecPath) -> DNSSettings {
        var address = "127.0.0.1"
        var port = 5353
        if let listen = spec.listen {
            if let colon = listen.lastIndex(of: ":"), let value = Int(listen[listen.index(after: colon)...]), (0...65535).contains(value),
                Self.isIPLiteral(String(listen[..<colon]).trimmingCharacters(in: ["[", "]"]))
            {
                address = String(listen[..<colon]).trimmingCharacters(in: ["[", "]"])
                port = value
            } else {
                problem(path / "listen", "\"\(listen)\" is not address:port, e.g. 127.0.0.1:5353")
            }
        }
        let ttl = ttlSeconds(spec.ttl, default: 30, at: path / "ttl")
        var zones: [DNSZone] = []
        var origins: [DNSName: Int] = [:]
        var pointers: [(record: DNSResourceRecord, at: SpecPath)] = []
        for (index, zone) in (spec.zones ?? []).enumerated() {
            guard let built = compileZone(zone, ttl: ttl, listeners: listeners, at: path / "zones" / index, pointers: &pointers) else { continue }
            if let first = origins[built.origin] {
                problem(path / "zones" / index / "origin", "zone \(built.origin) is already defined by zones[\(first)]")
                continue
            }
            origins[built.origin] = index
            zones.append(built)
        }
        // RFC 2181 §10.3: an NS or MX target must be a name with addresses, never an alias.
        let aliases = Set(zones.flatMap(\.records).filter { $0.type == .cname }.map(\.name))
        for (record, at) in pointers {
            guard let target = record.data.additionalTarget, aliases.contains(target), record.type == .ns || record.type == .mx else { continue }
            problem(at / "target", "\(target) is a CNAME; an \(record.type) record must point at a name with A or AAAA records (RFC 2181 §10.3)")
        }
        var clusterDomain = try! DNSName("cluster.local")
        if let text = spec.clusterDomain {
            if let name = try? DNSName(text) { clusterDomain = name } else { problem(path / "clusterDomain", "\"\(text)\" is not a DNS name") }
        }
        let namespace = spec.namespace ?? "default"
        if !Self.isDNSLabel(namespace) { problem(path / "namespace", "\"\(namespace)\" is not a DNS label (lowercase letters, digits, '-')") }
        return DNSSettings(address: address, port: port, zones: zones, ttl: ttl, clusterDomain: clusterDomain, namespace: namespace)
    }

    private mutating func compileZone(
        _ spec: DNSZoneSpec, ttl: UInt32, listeners: [ListenerSettings], at path: SpecPath,
        pointers: inout [(record: DNSResourceRecord, at: SpecPath)]
    ) -> DNSZone? {
        guard let originText = spec.origin else {
            problem(path / "origin", "missing required key \"origin\", e.g. origin: example.com")
            return nil
        }
        guard let origin = try? DNSName(originText), !origin.isRoot else {
            problem(path / "origin", "\"\(originText)\" is not a DNS name, e.g. example.com")
            return nil
        }
        var records: [DNSResourceRecord] = []
        for (index, record) in (spec.records ?? []).enumerated() {
            let here = path / "records" / index
            if let built = compileRecord(record, origin: origin, ttl: ttl, listeners: listeners, at: here) {
                records.append(contentsOf: built)
                pointers += built.map { ($0, here) }
            }
        }
        guard let soa = compileSOA(spec, origin: origin, records: records, ttl: ttl, at: path) else { return nil }
        do {
            return try DNSZone(origin: origin, soa: soa, records: records)
        } catch {
            problem(path, "\(error)")
            return nil
        }
    }

    /// The SOA from `soa:` (and `hostmaster`), each field defaulting to what gantry chose before
    /// there was a key for it. MNAME names the primary server, so it must be one of the zone's
    /// NS names when it has any.
    private mutating func compileSOA(_ spec: DNSZoneSpec, origin: DNSName, records: [DNSResourceRecord], ttl: UInt32, at path: SpecPath)
        -> DNSZone.SOA?
    {
        let soa = spec.soa ?? DNSSOASpec()
        let here = path / "soa"
        if spec.hostmaster != nil, soa.rname != nil { problem(here / "rname", "set either hostmaster or soa.rname, not both") }
        let mailbox = soa.rname ?? spec.hostmaster ?? "hostmaster@\(origin)"
        let mailboxKey = soa.rname != nil ? here / "rname" : path / "hostmaster"
        guard let rname = try? DNSName(mailbox.replacingOccurrences(of: "@", with: ".")), mailbox.contains("@") || soa.rname != nil else {
            problem(mailboxKey, "\"\(mailbox)\" is not an email address")
            return nil
        }
        let servers = records.filter { $0.name == origin }.compactMap { if case .ns(let target) = $0.data { target } else { nil } }
        var mname = servers.first ?? (try? origin.prepending("ns")) ?? origin
        if let text = soa.mname {
            guard let name = try? Self.ownerName(text, origin: origin) else {
                problem(here / "mname", "\"\(text)\" is not a DNS name")
                return nil
            }
            mname = name
        }
        if !servers.isEmpty, !servers.contains(mname) {
            problem(
                here / "mname", "\(mname) is not one of the zone's NS names (\(servers.map(\.description).joined(separator: ", "))): MNAME is its primary name server")
        }
        // No secondary servers transfer these zones, so the serial only has to differ when the
        // content does: a digest of the records keeps compilation free of clocks.
        let serial = soa.serial ?? UInt32(truncatingIfNeeded: StableHash.hash(records.map(\.description).joined(separator: "\n")) >> 33)
        return DNSZone.SOA(
            mname: mname, rname: rname, serial: serial, refresh: ttlSeconds(soa.refresh, default: 3600, at: here / "refresh"),
            retry: ttlSeconds(soa.retry, default: 600, at: here / "retry"), expire: ttlSeconds(soa.expire, default: 86400, at: here / "expire"),
            minimum: ttlSeconds(soa.minimum, default: ttl, at: here / "minimum"), ttl: ttl)
    }

    private mutating func compileRecord(
        _ spec: DNSRecordSpec, origin: DNSName, ttl defaultTTL: UInt32, listeners: [ListenerSettings], at path: SpecPath
    ) -> [DNSResourceRecord]? {
        let nameText = spec.name ?? "@"
        let name: DNSName
        do {
            name = try Self.ownerName(nameText, origin: origin)
        } catch {
            problem(path / "name", "\"\(nameText)\" is not a DNS name")
            return nil
        }
        guard let type = spec.type?.uppercased() else {
            problem(path / "type", "missing required key \"type\" (one of \(Self.dnsTypes.joined(separator: ", ")))")
            return nil
        }
        let ttl = ttlSeconds(spec.ttl, default: defaultTTL, at: path / "ttl")
        func record(_ data: DNSRecordData) -> DNSResourceRecord { DNSResourceRecord(name: name, ttl: ttl, data: data) }
        func target() -> DNSName? {
            guard let text = spec.target else {
                problem(path / "target", "a \(type) record needs target: <name>")
                return nil
            }
            guard let name = try? Self.ownerName(text, origin: origin) else {
                problem(path / "target", "\"\(text)\" is not a DNS name")
                return nil
            }
            return name
        }
        func uint16(_ value: Int?, _ key: String, default fallback: Int) -> UInt16? {
            let value = value ?? fallback
            guard (0...65535).contains(value) else {
                problem(path / key, "must be between 0 and 65535")
                return nil
            }
            return UInt16(value)
        }
        switch type {
        case "A", "AAAA":
            if let listenerName = spec.listener {
                guard let listener = listeners.first(where: { $0.name == listenerName }) else {
                    problem(path / "listener", "unknown listener \"\(listenerName)\"" + Suggestion.hint(for: listenerName, among: listeners.map(\.name)))
                    return nil
                }
                // A listener on every address is reached on loopback from this machine.
                let reachable = listener.address == "0.0.0.0" ? "127.0.0.1" : listener.address == "::" ? "::1" : listener.address
                if type == "A", let v4 = IPv4Address(reachable) { return [record(.a(v4))] }
                if type == "AAAA", let v6 = IPv6Address(reachable) { return [record(.aaaa(v6))] }
                problem(path / "listener", "listener \"\(listenerName)\" listens on \(listener.address), which is not an \(type == "A" ? "IPv4" : "IPv6") address")
                return nil
            }
            guard let text = spec.address else {
                problem(path / "address", "an \(type) record needs address: <ip> or listener: <name>")
                return nil
            }
            if type == "A", let v4 = IPv4Address(text) { return [record(.a(v4))] }
            if type == "AAAA", let v6 = IPv6Address(text) { return [record(.aaaa(v6))] }
            problem(path / "address", "\"\(text)\" is not an \(type == "A" ? "IPv4" : "IPv6") address")
            return nil
        case "CNAME": return target().map { [record(.cname($0))] }
        case "NS": return target().map { [record(.ns($0))] }
        case "MX":
            guard let exchange = target(), let preference = uint16(spec.preference, "preference", default: 10) else { return nil }
            return [record(.mx(preference: preference, exchange: exchange))]
        case "SRV":
            guard let port = spec.port else {
                problem(path / "port", "an SRV record needs port: <number>")
                return nil
            }
            guard let target = target(), let priority = uint16(spec.priority, "priority", default: 10),
                let weight = uint16(spec.weight, "weight", default: 100), let port = uint16(port, "port", default: 0)
            else { return nil }
            return [record(.srv(priority: priority, weight: weight, port: port, target: target))]
        case "TXT":
            guard let text = spec.text, !text.isEmpty else {
                problem(path / "text", "a TXT record needs text: [\"...\"]")
                return nil
            }
            return [record(.txt(text))]
        default:
            problem(path / "type", "unknown record type \"\(type)\": use one of \(Self.dnsTypes.joined(separator: ", "))" + Suggestion.hint(for: type, among: Self.dnsTypes))
            return nil
        }
    }

    /// `@` → the origin; a name ending in `.` or in the origin as it stands; else relative.
    static func ownerName(_ text: String, origin: DNSName) throws -> DNSName {
        if text == "@" { return origin }
        if text.hasSuffix(".") { return try DNSName(text) }
        let name = try DNSName(text)
        if name.isSubdomain(of: origin) { return name }
        return try DNSName(text + "." + origin.description)
    }

    /// A TTL or SOA interval in whole seconds: from 1 up to 2^31−1 (RFC 2181 §8 makes the top
    /// bit of a TTL zero).
    private mutating func ttlSeconds(_ value: DurationSpec?, default fallback: UInt32, at path: SpecPath) -> UInt32 {
        let seconds = positive(value, default: .seconds(Int64(fallback)), at: path).components.seconds
        guard seconds <= Int64(Int32.max) else {
            problem(path, "must be at most 2147483647s, about 68 years (RFC 2181 §8)")
            return fallback
        }
        return UInt32(max(seconds, 1))
    }
}
