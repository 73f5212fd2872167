import Testing

@testable import GantryCore
@testable import GantryDNS

private func name(_ text: String) -> DNSName {
    try! DNSName(text)
}

private func rr(_ owner: String, _ data: DNSRecordData, ttl: UInt32 = 300) -> DNSResourceRecord {
    DNSResourceRecord(name: name(owner), ttl: ttl, data: data)
}

private func v4(_ text: String) -> DNSRecordData { .a(IPv4Address(text)!) }

private func soa(_ origin: String, ttl: UInt32 = 3600, minimum: UInt32 = 300) -> DNSZone.SOA {
    DNSZone.SOA(mname: name("ns1." + origin), rname: name("hostmaster." + origin), serial: 42, minimum: minimum, ttl: ttl)
}

private let authority: DNSAuthority = {
    let example = try! DNSZone(
        origin: name("example.com"), soa: soa("example.com"),
        records: [
            rr("example.com", .ns(name("ns1.example.com"))),
            rr("example.com", .ns(name("ns2.example.com"))),
            rr("ns1.example.com", v4("192.0.2.53")),
            rr("ns2.example.com", .aaaa(IPv6Address("2001:db8::53")!)),
            rr("www.example.com", v4("192.0.2.1")),
            rr("www.example.com", v4("192.0.2.2")),
            rr("www.example.com", .aaaa(IPv6Address("2001:db8::1")!)),
            rr("alias.example.com", .cname(name("www.example.com"))),
            rr("external.example.com", .cname(name("www.elsewhere.net"))),
            rr("dangling.example.com", .cname(name("nothing.example.com"))),
            rr("loop1.example.com", .cname(name("loop2.example.com"))),
            rr("loop2.example.com", .cname(name("loop1.example.com"))),
            rr("cross.example.com", .cname(name("target.other.test"))),
            rr("deep.sub.example.com", v4("192.0.2.7")),
            rr("*.wild.example.com", v4("192.0.2.99")),
            rr("host.wild.example.com", .txt(["here"])),
            rr("x.y.wild.example.com", v4("192.0.2.98")),
            // A delegation: child.example.com is another zone's, with glue for its server.
            rr("child.example.com", .ns(name("ns.child.example.com"))),
            rr("child.example.com", .ns(name("ns1.example.com"))),
            rr("ns.child.example.com", v4("192.0.2.60")),
            rr("mail.example.com", .mx(preference: 10, exchange: name("mx.example.com"))),
            rr("mx.example.com", v4("192.0.2.25")),
            rr("_http._tcp.example.com", .srv(priority: 0, weight: 5, port: 8080, target: name("www.example.com"))),
            rr("txt.example.com", .txt(["hello", "world"])),
        ])
    let child = try! DNSZone(origin: name("sub2.example.com"), soa: soa("sub2.example.com", ttl: 60, minimum: 600), records: [rr("a.sub2.example.com", v4("198.51.100.1"))])
    let other = try! DNSZone(origin: name("other.test"), soa: soa("other.test"), records: [rr("target.other.test", v4("203.0.113.5"))])
    let big = try! DNSZone(origin: name("big.test"), soa: soa("big.test"), records: (0..<60).map { rr("many.big.test", .a(IPv4Address(10, 0, 0, UInt8($0)))) })
    return DNSAuthority(zones: [other, example, big, child])
}()

/// A query as a client would send it: RD set, optionally EDNS.
private func query(_ qname: String, _ type: DNSRecordType, id: UInt16 = 0x4242, dnsClass: UInt16 = DNSClass.internet, edns: EDNS? = nil) -> [UInt8] {
    DNSMessage(id: id, flags: DNSHeaderFlags(rd: true), questions: [DNSQuestion(name: name(qname), type: type, dnsClass: dnsClass)], edns: edns).encode()
}

private func ask(_ bytes: [UInt8], over transport: DNSTransport = .udp) throws -> DNSMessage {
    let response = try #require(authority.respond(to: bytes, transport: transport))
    return try DNSMessage.decode(response)
}

/// Records as lowercase zone-file lines, order-independent.
private func lines(_ records: [DNSResourceRecord]) -> Set<String> {
    Set(records.map { $0.description.lowercased() })
}

struct DNSAuthorityTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let qname: String
        let type: DNSRecordType
        var rcode = DNSResponseCode.noError
        var aa = true
        var answers: Set<String> = []
        /// The owner and TTL of the SOA expected in the authority section.
        var soa: (owner: String, ttl: UInt32)?
        var additionals: Set<String> = []
        var testDescription: String { "\(qname) \(type)" }
    }

    static let www: Set<String> = ["www.example.com. 300 in a 192.0.2.1", "www.example.com. 300 in a 192.0.2.2"]

    static let cases: [Case] = [
        Case(qname: "www.example.com", type: .a, answers: www),
        Case(qname: "WwW.ExAmPlE.CoM", type: .a, answers: www),
        Case(qname: "www.example.com.", type: .aaaa, answers: ["www.example.com. 300 in aaaa 2001:db8::1"]),
        Case(qname: "www.example.com", type: .txt, soa: ("example.com", 300)),
        Case(qname: "nope.example.com", type: .a, rcode: .nxDomain, soa: ("example.com", 300)),
        Case(qname: "sub.example.com", type: .a, soa: ("example.com", 300)),  // empty non-terminal
        Case(qname: "alias.example.com", type: .a, answers: www.union(["alias.example.com. 300 in cname www.example.com."])),
        Case(qname: "alias.example.com", type: .cname, answers: ["alias.example.com. 300 in cname www.example.com."]),
        Case(qname: "alias.example.com", type: .txt, answers: ["alias.example.com. 300 in cname www.example.com."], soa: ("example.com", 300)),
        Case(qname: "external.example.com", type: .a, answers: ["external.example.com. 300 in cname www.elsewhere.net."]),
        Case(qname: "dangling.example.com", type: .a, rcode: .nxDomain, answers: ["dangling.example.com. 300 in cname nothing.example.com."], soa: ("example.com", 300)),
        Case(qname: "loop1.example.com", type: .a, answers: ["loop1.example.com. 300 in cname loop2.example.com.", "loop2.example.com. 300 in cname loop1.example.com."]),
        Case(qname: "cross.example.com", type: .a, answers: ["cross.example.com. 300 in cname target.other.test.", "target.other.test. 300 in a 203.0.113.5"]),
        Case(qname: "foo.wild.example.com", type: .a, answers: ["foo.wild.example.com. 300 in a 192.0.2.99"]),
        Case(qname: "a.b.wild.example.com", type: .a, answers: ["a.b.wild.example.com. 300 in a 192.0.2.99"]),
        Case(qname: "*.wild.example.com", type: .a, answers: ["*.wild.example.com. 300 in a 192.0.2.99"]),
        Case(qname: "foo.wild.example.com", type: .txt, soa: ("example.com", 300)),  // wildcard exists, no TXT
        Case(qname: "host.wild.example.com", type: .a, soa: ("example.com", 300)),  // existing name blocks the wildcard
        Case(qname: "y.wild.example.com", type: .a, soa: ("example.com", 300)),  // so does an empty non-terminal
        Case(qname: "z.y.wild.example.com", type: .a, rcode: .nxDomain, soa: ("example.com", 300)),  // no *.y.wild
        Case(qname: "wild.example.com", type: .a, soa: ("example.com", 300)),
        Case(qname: "example.com", type: .soa, answers: ["example.com. 3600 in soa ns1.example.com. hostmaster.example.com. 42 3600 600 86400 300"]),
        Case(
            qname: "example.com", type: .ns, answers: ["example.com. 300 in ns ns1.example.com.", "example.com. 300 in ns ns2.example.com."],
            additionals: ["ns1.example.com. 300 in a 192.0.2.53", "ns2.example.com. 300 in aaaa 2001:db8::53"]),
        Case(qname: "mail.example.com", type: .mx, answers: ["mail.example.com. 300 in mx 10 mx.example.com."], additionals: ["mx.example.com. 300 in a 192.0.2.25"]),
        Case(
            qname: "_http._tcp.example.com", type: .srv, answers: ["_http._tcp.example.com. 300 in srv 0 5 8080 www.example.com."],
            additionals: www.union(["www.example.com. 300 in aaaa 2001:db8::1"])),
        Case(qname: "www.example.com", type: .any, answers: www),  // one RRset over UDP (RFC 8482)
        Case(qname: "txt.example.com", type: .txt, answers: ["txt.example.com. 300 in txt \"hello\" \"world\""]),
        Case(qname: "a.sub2.example.com", type: .a, answers: ["a.sub2.example.com. 300 in a 198.51.100.1"]),
        Case(qname: "b.sub2.example.com", type: .a, rcode: .nxDomain, soa: ("sub2.example.com", 60)),  // longest zone; min(ttl 60, minimum 600)
        Case(qname: "www.example.net", type: .a, rcode: .refused, aa: false),
        Case(qname: "com", type: .a, rcode: .refused, aa: false),
        Case(qname: "example.com", type: .axfr, rcode: .refused, aa: false),
    ]

    @Test(arguments: cases)
    func answers(_ testCase: Case) throws {
        let response = try ask(query(testCase.qname, testCase.type))
        #expect(response.id == 0x4242)
        #expect(response.flags.qr && response.flags.rd && !response.flags.ra && !response.flags.tc)
        #expect(response.rcode == testCase.rcode)
        #expect(response.flags.aa == testCase.aa)
        #expect(response.questions.count == 1)
        // The question comes back exactly as spelled.
        #expect(response.questions.first?.name.description == name(testCase.qname).description)
        #expect(lines(response.answers) == testCase.answers)
        #expect(lines(response.additionals) == testCase.additionals)
        if let (owner, ttl) = testCase.soa {
            #expect(response.authorities.count == 1)
            #expect(response.authorities.first?.type == .soa)
            #expect(response.authorities.first?.name == name(owner))
            #expect(response.authorities.first?.ttl == ttl)
        } else {
            #expect(response.authorities.isEmpty)
        }
    }

    @Test func answersCarryTheQuerySpellingOnTheWire() throws {
        let response = try ask(query("WwW.ExAmPlE.CoM", .a))
        #expect(response.answers.allSatisfy { $0.name.description == "WwW.ExAmPlE.CoM." })
    }

    @Test func classesOtherThanINAndANYAreRefused() throws {
        #expect(try ask(query("www.example.com", .a, dnsClass: DNSClass.any)).answers.count == 2)
        let chaos = try ask(query("www.example.com", .a, dnsClass: DNSClass.chaos))
        #expect(chaos.rcode == .refused && !chaos.flags.aa && chaos.answers.isEmpty)
    }

    @Test(arguments: [DNSOpcode.iquery, .status, .notify, .update, DNSOpcode(rawValue: 15)])
    func otherOpcodesAreNotImplemented(_ opcode: DNSOpcode) throws {
        var message = try DNSMessage.decode(query("www.example.com", .a))
        message.flags.opcode = opcode
        let response = try ask(message.encode())
        #expect(response.rcode == .notImp)
        #expect(response.flags.opcode == opcode && response.answers.isEmpty)
    }

    @Test(arguments: [0, 2])
    func exactlyOneQuestion(_ count: Int) throws {
        let question = DNSQuestion(name: name("www.example.com"), type: .a)
        let bytes = DNSMessage(id: 9, questions: Array(repeating: question, count: count)).encode()
        let response = try ask(bytes)
        #expect(response.rcode == .formErr && response.id == 9 && response.answers.isEmpty)
    }

    @Test func responsesAndRuntsGetSilence() {
        var response = query("www.example.com", .a)
        response[2] |= 0x80
        #expect(authority.respond(to: response, transport: .udp) == nil)
        #expect(authority.respond(to: Array(query("www.example.com", .a).prefix(11)), transport: .udp) == nil)
        #expect(authority.respond(to: [], transport: .tcp) == nil)
    }

    @Test func undecodableQueriesGetFORMERRWithTheirID() throws {
        let bytes = Array(query("www.example.com", .a, id: 0xCAFE).dropLast(3))
        let response = try ask(bytes)
        #expect(response.id == 0xCAFE && response.rcode == .formErr && response.flags.qr && response.flags.rd)
        #expect(response.questions.isEmpty)
        let opt: [UInt8] = [0, 0, 41, 4, 0xD0, 0, 0, 0, 0, 0, 0]
        var single = query("www.example.com", .a, id: 7) + opt
        single[11] = 1
        #expect(try ask(single).rcode == .noError)
        var doubled = single + opt
        doubled[11] = 2  // RFC 6891 §6.1.1
        #expect(try ask(doubled).rcode == .formErr)
    }

    @Test func ednsQueriesGetOurOPT() throws {
        let response = try ask(query("www.example.com", .a, edns: EDNS(udpPayloadSize: 4096, dnssecOK: true, options: [EDNSOption(code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8])])))
        let edns = try #require(response.edns)
        #expect(edns.udpPayloadSize == 1232 && edns.version == 0 && edns.options.isEmpty)
        #expect(edns.dnssecOK)  // RFC 3225 §3: copied
        #expect(try ask(query("www.example.com", .a)).edns == nil)
    }

    @Test func unknownEDNSVersionIsBADVERS() throws {
        let bytes = try #require(authority.respond(to: query("www.example.com", .a, edns: EDNS(version: 1)), transport: .udp))
        #expect(bytes[3] & 0x0F == 0)  // header RCODE bits 0...
        let response = try DNSMessage.decode(bytes)
        #expect(response.rcode == .badVers)  // ...and EXTENDED-RCODE 1 in OPT: 16
        #expect(response.edns?.version == 0 && response.answers.isEmpty)
        #expect(bytes.suffix(11).prefix(6) == [0, 0, 41, 0x04, 0xD0, 1])
    }

    @Test(arguments: [
        (DNSTransport.udp, nil as UInt16?, true), (.udp, 100, true), (.udp, 512, true), (.udp, 1232, false), (.udp, 65000, false), (.tcp, nil, false),
    ])
    func sizeLimitsTruncateOverUDP(_ transport: DNSTransport, _ payload: UInt16?, _ truncated: Bool) throws {
        // 60 A records: about 1000 bytes.
        let bytes = query("many.big.test", .a, edns: payload.map { EDNS(udpPayloadSize: $0) })
        let raw = try #require(authority.respond(to: bytes, transport: transport))
        let response = try DNSMessage.decode(raw)
        #expect(response.flags.tc == truncated)
        #expect(response.answers.count == (truncated ? 0 : 60))
        #expect(response.questions.count == 1 && response.flags.aa)
        if truncated { #expect(raw.count <= 512) }
        #expect(DNSAuthority.sizeLimit(for: try DNSMessage.decode(bytes), transport: .udp) == (payload.map { max(512, min(Int($0), 4096)) } ?? 512))
    }

    @Test func zonesRejectRecordsTheyCannotServe() {
        #expect(throws: DNSZoneError.recordOutsideZone(record: "www.example.org. 300 IN A 192.0.2.1", origin: "example.com.")) {
            try DNSZone(origin: name("example.com"), soa: soa("example.com"), records: [rr("www.example.org", v4("192.0.2.1"))])
        }
        #expect(throws: DNSZoneError.cnameAndOtherData("a.example.com.")) {
            try DNSZone(origin: name("example.com"), soa: soa("example.com"), records: [rr("a.example.com", .cname(name("b.example.com"))), rr("a.example.com", .txt(["x"]))])
        }
        for bad in [rr("example.com", .cname(name("x.test"))), rr("x.example.com", .unknown(type: 1, bytes: [1])), rr("x.example.com", .unknown(type: 41, bytes: []))] {
            #expect(throws: DNSZoneError.self) { try DNSZone(origin: name("example.com"), soa: soa("example.com"), records: [bad]) }
        }
        let duplicated = try? DNSZone(origin: name("example.com"), soa: soa("example.com"), records: [rr("a.example.com", v4("192.0.2.1")), rr("A.example.com", v4("192.0.2.1"))])
        #expect(duplicated?.records.count == 1)
    }

    /// RFC 1034 §4.2.1, §4.3.2: NS records below the apex cut the zone. A query at or below the
    /// cut gets a referral: not authoritative, no answer, the child's NS records in the authority
    /// section and the glue held for them in the additional section.
    @Test(arguments: [("www.child.example.com", DNSRecordType.a), ("child.example.com", .ns), ("deep.x.child.example.com", .txt), ("ns.child.example.com", .a)])
    func delegationsGetReferrals_RFC1034_4_3_2(qname: String, type: DNSRecordType) throws {
        let response = try ask(query(qname, type))
        #expect(response.rcode == .noError)
        #expect(!response.flags.aa)
        #expect(response.answers.isEmpty)
        #expect(lines(response.authorities) == ["child.example.com. 300 in ns ns.child.example.com.", "child.example.com. 300 in ns ns1.example.com."])
        // Glue below the cut, and the in-zone server's address from elsewhere in the zone.
        #expect(lines(response.additionals) == ["ns.child.example.com. 300 in a 192.0.2.60", "ns1.example.com. 300 in a 192.0.2.53"])
    }

    /// Only NS at a cut, only glue below it: anything else belongs to the child zone.
    @Test func delegationsHoldOnlyNSAndGlue() {
        let delegation = [rr("sub.example.com", .ns(name("ns.sub.example.com"))), rr("ns.sub.example.com", v4("192.0.2.9"))]
        #expect((try? DNSZone(origin: name("example.com"), soa: soa("example.com"), records: delegation)) != nil)
        #expect(throws: DNSZoneError.dataAtDelegation(record: "sub.example.com. 300 IN A 192.0.2.1", cut: "sub.example.com.")) {
            try DNSZone(origin: name("example.com"), soa: soa("example.com"), records: delegation + [rr("sub.example.com", v4("192.0.2.1"))])
        }
        #expect(throws: DNSZoneError.belowDelegation(record: "www.sub.example.com. 300 IN A 192.0.2.2", cut: "sub.example.com.")) {
            try DNSZone(origin: name("example.com"), soa: soa("example.com"), records: delegation + [rr("www.sub.example.com", v4("192.0.2.2"))])
        }
        #expect(throws: DNSZoneError.self) {
            try DNSZone(origin: name("example.com"), soa: soa("example.com"), records: delegation + [rr("ns.sub.example.com", .txt(["not glue"]))])
        }
    }

    /// RFC 8482 §4.1: ANY over UDP is one RRset; over TCP the whole node.
    @Test func anyIsMinimalOverUDPOnly_RFC8482() throws {
        #expect(lines(try ask(query("www.example.com", .any)).answers) == DNSAuthorityTests.www)
        #expect(lines(try ask(query("www.example.com", .any), over: .tcp).answers) == DNSAuthorityTests.www.union(["www.example.com. 300 in aaaa 2001:db8::1"]))
    }

    @Test func seededMutationsNeverCrashTheServer() throws {
        var random = SplitMix64(seed: 0x00D1_5EA5E)
        let seeds = [
            query("www.example.com", .a, edns: EDNS(options: [EDNSOption(code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8])])),
            query("alias.example.com", .any), query("foo.wild.example.com", .txt),
            DNSMessage(id: 1, flags: DNSHeaderFlags(rd: true), questions: [DNSQuestion(name: name("example.com"), type: .ns)], answers: [rr("a.example.com", .mx(preference: 1, exchange: name("mx.example.com")))]).encode(),
        ]
        var answered = 0
        for iteration in 0..<4000 {
            var packet = seeds[iteration % seeds.count]
            for _ in 0...random.next(below: 4) {
                let position = packet.isEmpty ? 0 : random.next(below: packet.count)
                switch random.next(below: 6) {
                case 0 where !packet.isEmpty: packet[position] = UInt8(truncatingIfNeeded: random.next())
                case 1: packet.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
                case 2 where !packet.isEmpty: packet.remove(at: position)
                case 3: packet = Array(packet.prefix(position))
                case 4 where position + 1 < packet.count: packet[position] = 0xC0 | UInt8(random.next(below: 4)); packet[position + 1] = UInt8(truncatingIfNeeded: random.next())
                default: if !packet.isEmpty { packet[position] ^= 1 << UInt8(random.next(below: 8)) }
                }
            }
            let response = authority.respond(to: packet, transport: iteration % 5 == 0 ? .tcp : .udp)
            let header = DNSMessage.decodeHeader(packet)
            guard let response else {
                #expect(header == nil || header!.flags.qr)
                continue
            }
            answered += 1
            let decoded = try DNSMessage.decode(response)
            #expect(decoded.id == header?.id && decoded.flags.qr)
            #expect(response.count <= (iteration % 5 == 0 ? 65535 : 4096))
            if let message = try? DNSMessage.decode(packet) {
                if message.edns == nil, iteration % 5 != 0 { #expect(response.count <= 512) }
                _ = message.encode(maxSize: 512)
            }
        }
        #expect(answered > 1000)
    }
}

/// A tiny deterministic generator (Steele, Lea & Flood's SplitMix64), so failures replay.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
