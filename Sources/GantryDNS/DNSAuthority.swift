import GantryCore

public enum DNSTransport: Sendable {
    case udp
    case tcp
}

/// An authoritative-only name server over a set of zones (RFC 1034 §4.3.2, with referrals for
/// delegations): no recursion, no caching, no zone transfers. Pure: bytes in, bytes out.
public struct DNSAuthority: Sendable {
    /// What we advertise in OPT: the size the DNS Flag Day 2020 settled on to avoid IP
    /// fragmentation.
    public static let advertisedPayloadSize: UInt16 = 1232
    /// CNAMEs followed within our zones before giving up and returning the chain so far.
    static let maxCNAMEChain = 8

    /// Most specific origin first, so the first zone containing a name is the longest match.
    public let zones: [DNSZone]

    /// When two zones share an origin, the first one given is served.
    public init(zones: [DNSZone]) {
        var seen: Set<DNSName> = []
        let unique = zones.filter { seen.insert($0.origin).inserted }
        self.zones = unique.enumerated()
            .sorted { ($0.element.origin.labelCount, -$0.offset) > ($1.element.origin.labelCount, -$1.offset) }
            .map(\.element)
    }

    /// The zone authoritative for `name`: the one with the longest origin that contains it.
    public func zone(for name: DNSName) -> DNSZone? {
        zones.first { name.isSubdomain(of: $0.origin) }
    }

    /// Answers one query packet (without the TCP length prefix). Nil means send nothing: the
    /// packet is too short to carry an ID to answer with, or is itself a response (answering
    /// responses invites loops between servers, RFC 1035 §7.3 and RFC 5452 §4).
    public func respond(to query: [UInt8], transport: DNSTransport) -> [UInt8]? {
        guard let header = DNSMessage.decodeHeader(query), !header.flags.qr else { return nil }
        let message: DNSMessage
        do {
            message = try DNSMessage.decode(query)
        } catch {
            // Undecodable past the header: FORMERR with the client's ID, no question echoed
            // since we could not read it (RFC 1035 §4.1.1).
            let flags = DNSHeaderFlags(qr: true, opcode: header.flags.opcode, rd: header.flags.rd)
            return DNSMessage(id: header.id, flags: flags, rcode: .formErr).encode(maxSize: 512)
        }
        return answer(message, transport: transport).encode(maxSize: Self.sizeLimit(for: message, transport: transport))
    }

    /// The largest response we send: 512 over plain UDP (RFC 1035 §4.2.1); with EDNS the
    /// client's buffer size, at least 512 (RFC 6891 §6.2.5) and at most 4096; 65535 over TCP,
    /// whose length prefix is 16 bits (RFC 1035 §4.2.2).
    static func sizeLimit(for query: DNSMessage, transport: DNSTransport) -> Int {
        switch transport {
        case .tcp:
            return Int(UInt16.max)
        case .udp:
            guard let edns = query.edns else { return 512 }
            return max(512, min(Int(edns.udpPayloadSize), 4096))
        }
    }

    /// Builds the response to a decoded query. Over UDP an ANY query gets one RRset (RFC 8482
    /// §4.1): a full answer to ANY is the classic amplification; over TCP it gets them all.
    public func answer(_ query: DNSMessage, transport: DNSTransport) -> DNSMessage {
        // RA stays clear: we do not recurse. RD and CD are copied (RFC 1035 §4.1.1, RFC 6840 §5.9).
        var response = DNSMessage(
            id: query.id, flags: DNSHeaderFlags(qr: true, opcode: query.flags.opcode, rd: query.flags.rd, cd: query.flags.cd))
        if let edns = query.edns {
            // RFC 6891 §7: answer EDNS with EDNS. RFC 3225 §3: the DO bit is copied; we hold
            // no signatures, so it only tells the client the bit was understood.
            response.edns = EDNS(udpPayloadSize: Self.advertisedPayloadSize, dnssecOK: edns.dnssecOK)
            // RFC 6891 §6.1.3: we implement version 0 only.
            guard edns.version == 0 else {
                if query.questions.count == 1 { response.questions = query.questions }
                response.rcode = .badVers
                return response
            }
        }
        guard query.flags.opcode == .query else {
            response.rcode = .notImp
            return response
        }
        // RFC 9619: a QUERY carries exactly one question.
        guard query.questions.count == 1 else {
            response.rcode = .formErr
            return response
        }
        let question = query.questions[0]
        response.questions = [question]
        switch question.type {
        case .opt:
            // OPT is a pseudo-type that cannot be asked for (RFC 6891 §6.1.1).
            response.rcode = .formErr
            return response
        case .axfr, .ixfr:
            // Zone transfers are not offered.
            response.rcode = .refused
            return response
        default:
            break
        }
        guard question.dnsClass == DNSClass.internet || question.dnsClass == DNSClass.any,
            let zone = zone(for: question.name)
        else {
            response.rcode = .refused
            return response
        }
        response.flags.aa = true
        resolve(question, in: zone, minimalAny: transport == .udp, into: &response)
        return response
    }

    /// Fills answer, authority and additional sections (RFC 1034 §4.3.2 step 3), chasing CNAMEs
    /// through our own zones. The RCODE follows the last name of the chain (RFC 6604 §2); a chain
    /// that leaves our zones, loops or gets too long ends with what we have and NOERROR.
    ///
    /// Owner names are the zone's spelling, except for wildcard-synthesized records, which take
    /// the name asked for (RFC 4592 §3.3.1). On the wire, compression makes an answer's owner
    /// point at the question, so clients see their own spelling either way.
    private func resolve(_ question: DNSQuestion, in zone: DNSZone, minimalAny: Bool, into response: inout DNSMessage) {
        var name = question.name
        var zone = zone
        var visited: Set<DNSName> = [name]
        for _ in 0...Self.maxCNAMEChain {
            let records: [DNSResourceRecord]
            switch zone.lookup(name) {
            case .nxdomain:
                response.rcode = .nxDomain
                response.authorities = [zone.negativeSOARecord]
                return
            case .delegation(let servers):
                refer(to: servers, in: zone, into: &response)
                return
            case .exists(let found):
                records = found
            }
            let matching: [DNSResourceRecord]
            if question.type == .any {
                let firstType = records.first?.type
                matching = minimalAny ? records.filter { $0.type == firstType } : records
            } else {
                matching = records.filter { $0.type == question.type }
            }
            if !matching.isEmpty {
                response.answers += matching
                addAdditionals(to: &response)
                return
            }
            guard question.type != .cname, let cname = records.first(where: { $0.type == .cname }),
                case .cname(let target) = cname.data
            else {
                // NODATA (RFC 2308 §2.2): the name exists, the type does not.
                response.authorities = [zone.negativeSOARecord]
                return
            }
            response.answers.append(cname)
            guard visited.insert(target).inserted, let next = self.zone(for: target) else { return }
            name = target
            zone = next
        }
    }

    /// A referral (RFC 1034 §4.3.2 step 3b): not authoritative for what lies below the cut
    /// (unless a CNAME of ours led there), the child's NS records in the authority section, and
    /// the glue this zone holds for them in the additional section.
    private func refer(to servers: [DNSResourceRecord], in zone: DNSZone, into response: inout DNSMessage) {
        if response.answers.isEmpty { response.flags.aa = false }
        response.authorities = servers
        var present = Set(response.additionals)
        for case .ns(let target) in servers.map(\.data) {
            for record in zone.addresses(of: target) where present.insert(record).inserted { response.additionals.append(record) }
        }
    }

    /// Adds in-zone A/AAAA records for NS, MX and SRV targets in the answer (RFC 1035 §3.3.9,
    /// §3.3.11, RFC 2782) so the client need not ask again.
    private func addAdditionals(to response: inout DNSMessage) {
        var present = Set(response.answers)
        for target in response.answers.compactMap(\.data.additionalTarget) {
            guard let zone = zone(for: target), case .exists(let records) = zone.lookup(target) else { continue }
            for record in records where record.type == .a || record.type == .aaaa {
                if present.insert(record).inserted { response.additionals.append(record) }
            }
        }
    }
}
