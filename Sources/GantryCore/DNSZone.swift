/// One authoritative zone: an origin, its SOA and the records below it, indexed for lookup.
///
/// NS records below the apex are delegations (RFC 1034 §4.2.1): the zone is cut there, the
/// names at and below the cut belong to the child zone, and only its NS records and the
/// address records of its name servers that lie below the cut (glue) are held here.
public struct DNSZone: Sendable {
    /// The SOA fields (RFC 1035 §3.3.13) plus the TTL of the SOA record itself.
    public struct SOA: Hashable, Sendable {
        public var mname: DNSName
        public var rname: DNSName
        public var serial: UInt32
        public var refresh: UInt32
        public var retry: UInt32
        public var expire: UInt32
        /// Since RFC 2308 §4, the TTL for negative answers.
        public var minimum: UInt32
        public var ttl: UInt32

        public init(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32 = 3600, retry: UInt32 = 600, expire: UInt32 = 86400, minimum: UInt32 = 60, ttl: UInt32 = 3600) {
            self.mname = mname
            self.rname = rname
            self.serial = serial
            self.refresh = refresh
            self.retry = retry
            self.expire = expire
            self.minimum = minimum
            self.ttl = ttl
        }
    }

    public let origin: DNSName
    public let soa: SOA
    /// The records as given, minus exact duplicates (an RRset has no duplicate RRs, RFC 2181 §5).
    public let records: [DNSResourceRecord]

    /// Records by owner name, the apex SOA included.
    private let nodes: [DNSName: [DNSResourceRecord]]
    /// Every name that exists: owners and all their ancestors up to the origin, so empty
    /// non-terminals exist too (RFC 4592 §2.2.2).
    private let existing: Set<DNSName>
    /// The delegation points: names below the apex with NS records.
    private let cuts: Set<DNSName>

    public init(origin: DNSName, soa: SOA, records: [DNSResourceRecord]) throws(DNSZoneError) {
        self.origin = origin
        self.soa = soa
        var unique: [DNSResourceRecord] = []
        var seen: Set<DNSResourceRecord> = []
        for record in records where seen.insert(record).inserted {
            try Self.validate(record, origin: origin)
            unique.append(record)
        }
        self.records = unique

        let soaRecord = Self.soaRecord(origin: origin, soa: soa)
        var nodes: [DNSName: [DNSResourceRecord]] = [origin: [soaRecord]]
        var existing: Set<DNSName> = [origin]
        for record in unique {
            nodes[record.name, default: []].append(record)
            var name: DNSName? = record.name
            while let current = name, current != origin, existing.insert(current).inserted {
                name = current.parent
            }
        }
        // RFC 1034 §3.6.2 / RFC 2181 §10.1: a CNAME is the only data at its name.
        for (name, rrs) in nodes where rrs.contains(where: { $0.type == .cname }) && rrs.count > 1 {
            throw .cnameAndOtherData(name.description)
        }
        let cuts = Set(nodes.compactMap { name, rrs in name != origin && rrs.contains { $0.type == .ns } ? name : nil })
        try Self.checkDelegations(cuts, nodes: nodes)
        self.nodes = nodes
        self.existing = existing
        self.cuts = cuts
    }

    /// At a cut only NS records; below it only glue, the A and AAAA records of the cut's name
    /// servers (RFC 1034 §4.2.1): anything else would belong to the child zone and never be served.
    private static func checkDelegations(_ cuts: Set<DNSName>, nodes: [DNSName: [DNSResourceRecord]]) throws(DNSZoneError) {
        guard !cuts.isEmpty else { return }
        for (name, rrs) in nodes {
            if cuts.contains(name), let other = rrs.first(where: { $0.type != .ns }) {
                throw .dataAtDelegation(record: other.description, cut: name.description)
            }
            var ancestor = name.parent
            while let current = ancestor, !cuts.contains(current) { ancestor = current.parent }
            guard let cut = ancestor else { continue }
            let servers = nodes[cut, default: []].compactMap { if case .ns(let target) = $0.data { target } else { nil } }
            for record in rrs where !((record.type == .a || record.type == .aaaa) && servers.contains(name)) {
                throw .belowDelegation(record: record.description, cut: cut.description)
            }
        }
    }

    private static func validate(_ record: DNSResourceRecord, origin: DNSName) throws(DNSZoneError) {
        guard record.name.isSubdomain(of: origin) else {
            throw .recordOutsideZone(record: record.description, origin: origin.description)
        }
        guard record.dnsClass == DNSClass.internet else { throw .unsupportedRecord(record.description) }
        switch record.type {
        case .soa:
            throw .unsupportedRecord(record.description + " (the zone's SOA is given separately)")
        case .opt, .any, .axfr, .ixfr:
            // Meta and pseudo types cannot be stored data (RFC 6895 §3.1).
            throw .unsupportedRecord(record.description)
        default:
            break
        }
        // RDLENGTH is 16 bits; only TXT and opaque data can grow past it.
        let rdataLength: Int
        switch record.data {
        case .txt(let strings):
            // One length byte per ≤ 255-byte piece (see DNSMessageWriter.writeCharacterStrings).
            rdataLength = strings.reduce(0) { $0 + $1.utf8.count + max(1, ($1.utf8.count + 254) / 255) }
        case .unknown(let type, let bytes):
            // Opaque bytes under a type we interpret would be served unchecked and could be
            // unreadable to clients (an A record of 3 bytes); the typed cases exist for those.
            guard !Self.interpretedTypes.contains(DNSRecordType(rawValue: type)) else {
                throw .unsupportedRecord(record.description + " (use the typed record data)")
            }
            rdataLength = bytes.count
        default:
            rdataLength = 0
        }
        guard rdataLength <= Int(UInt16.max) else {
            throw .unsupportedRecord("\(record.name) \(record.type) (RDATA of \(rdataLength) bytes, over 65535)")
        }
    }

    private static let interpretedTypes: Set<DNSRecordType> = [.a, .ns, .cname, .soa, .mx, .txt, .aaaa, .srv]

    static func soaRecord(origin: DNSName, soa: SOA) -> DNSResourceRecord {
        DNSResourceRecord(
            name: origin, ttl: soa.ttl,
            data: .soa(mname: soa.mname, rname: soa.rname, serial: soa.serial, refresh: soa.refresh, retry: soa.retry, expire: soa.expire, minimum: soa.minimum))
    }

    public var soaRecord: DNSResourceRecord { Self.soaRecord(origin: origin, soa: soa) }

    /// The SOA for the authority section of a negative answer: its TTL is the lesser of the SOA
    /// record's TTL and MINIMUM (RFC 2308 §3).
    public var negativeSOARecord: DNSResourceRecord {
        var record = soaRecord
        record.ttl = min(soa.ttl, soa.minimum)
        return record
    }

    package enum Lookup: Equatable {
        /// The name exists; the records may be empty (an empty non-terminal, or an empty wildcard).
        case exists([DNSResourceRecord])
        case nxdomain
        /// The name is at or below a zone cut: the child zone's NS records, for a referral.
        case delegation([DNSResourceRecord])
    }

    /// The address records held for `name` as they are, glue below a cut included: what a
    /// referral's additional section carries.
    package func addresses(of name: DNSName) -> [DNSResourceRecord] {
        nodes[name, default: []].filter { $0.type == .a || $0.type == .aaaa }
    }

    /// Looks `name` (which must be at or below the origin) up, synthesizing from a wildcard
    /// (RFC 4592 §3.3.1): find the closest encloser, the deepest existing ancestor; if
    /// `*.<closest encloser>` exists, its records answer with the query name as owner. An
    /// existing name, empty non-terminals included, is never covered by a wildcard.
    package func lookup(_ name: DNSName) -> Lookup {
        if !cuts.isEmpty {
            var current: DNSName? = name
            while let candidate = current, candidate != origin {
                if cuts.contains(candidate) { return .delegation(nodes[candidate, default: []]) }
                current = candidate.parent
            }
        }
        if let records = nodes[name] { return .exists(records) }
        if existing.contains(name) { return .exists([]) }
        guard name.isSubdomain(of: origin) else { return .nxdomain }
        var encloser = name.parent
        while let current = encloser, !existing.contains(current) {
            encloser = current.parent
        }
        guard let encloser, let wildcard = try? encloser.prepending("*") else { return .nxdomain }
        if let records = nodes[wildcard] {
            return .exists(records.map { record in
                var synthesized = record
                synthesized.name = name
                return synthesized
            })
        }
        return existing.contains(wildcard) ? .exists([]) : .nxdomain
    }
}

public enum DNSZoneError: Error, Hashable, Sendable, CustomStringConvertible {
    case recordOutsideZone(record: String, origin: String)
    case cnameAndOtherData(String)
    case unsupportedRecord(String)
    case dataAtDelegation(record: String, cut: String)
    case belowDelegation(record: String, cut: String)

    public var description: String {
        switch self {
        case .dataAtDelegation(let record, let cut):
            "record '\(record)' is at \(cut), which NS records delegate to another zone: only NS records may be at a zone cut"
        case .belowDelegation(let record, let cut):
            "record '\(record)' is below the delegation at \(cut): only the A and AAAA records of its name servers (glue) may be there"
        case .recordOutsideZone(let record, let origin): "record '\(record)' is outside zone \(origin)"
        case .cnameAndOtherData(let name): "\(name) has a CNAME and other records; a CNAME must be alone at its name"
        case .unsupportedRecord(let record): "record '\(record)' cannot be served"
        }
    }
}
