import Testing

@testable import GantryCore
@testable import GantryDNS

private func name(_ text: String) -> DNSName {
    try! DNSName(text)
}

private func record(_ owner: String, _ data: DNSRecordData, ttl: UInt32 = 300) -> DNSResourceRecord {
    DNSResourceRecord(name: name(owner), ttl: ttl, data: data)
}

/// `example.com. IN A` as the wire spells it.
private let exampleQuestion: [UInt8] =
    [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0x00, 0x01, 0x00, 0x01]

/// What `dig example.com A` (BIND 9.18) sends: ID, RD+AD, one question, an OPT advertising
/// 1232 bytes with an 8-byte client COOKIE (option 10).
private let digQuery: [UInt8] =
    [0xA1, 0xB2, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01] + exampleQuestion
    + [0x00, 0x00, 0x29, 0x04, 0xD0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C]
    + [0x00, 0x0A, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]

/// `dig +noedns example.com A`: the same without the additional record.
private let digQueryNoEDNS: [UInt8] =
    [0xA1, 0xB2, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] + exampleQuestion

private func header(id: UInt16 = 0x0102, flags: UInt16 = 0x0100, counts: [UInt16]) -> [UInt8] {
    [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF)] + counts.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
}

/// A record's fixed part: TYPE, CLASS IN, TTL 60, RDLENGTH.
private func fixed(type: UInt16, rdlength: UInt16) -> [UInt8] {
    [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1, 0, 0, 0, 60, UInt8(rdlength >> 8), UInt8(rdlength & 0xFF)]
}

private let optRecord: [UInt8] = [0, 0x00, 0x29, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]

struct DNSMessageTests {
    // MARK: Decoding real queries

    @Test func decodesDigQueryWithEDNS() throws {
        let message = try DNSMessage.decode(digQuery)
        #expect(message.id == 0xA1B2)
        #expect(message.flags == DNSHeaderFlags(rd: true, ad: true))
        #expect(message.rcode == .noError)
        #expect(message.questions == [DNSQuestion(name: name("example.com"), type: .a)])
        #expect(message.answers.isEmpty && message.authorities.isEmpty && message.additionals.isEmpty)
        let edns = try #require(message.edns)
        #expect(edns.udpPayloadSize == 1232)
        #expect(edns.version == 0 && !edns.dnssecOK)
        #expect(edns.options == [EDNSOption(code: 10, data: [1, 2, 3, 4, 5, 6, 7, 8])])
        #expect(message.encode() == digQuery)
    }

    @Test func decodesDigQueryWithoutEDNS() throws {
        let message = try DNSMessage.decode(digQueryNoEDNS)
        #expect(message.id == 0xA1B2)
        #expect(message.questions.first?.name.description == "example.com.")
        #expect(message.edns == nil)
        #expect(message.encode() == digQueryNoEDNS)
    }

    @Test func headerAloneDecodesEvenWhenTheBodyIsGarbage() throws {
        let bytes = header(id: 0xBEEF, flags: 0x1100, counts: [1, 0, 0, 0]) + [0xFF, 0xFF]
        #expect(throws: DNSDecodingError.self) { try DNSMessage.decode(bytes) }
        let parsed = try #require(DNSMessage.decodeHeader(bytes))
        #expect(parsed.id == 0xBEEF)
        #expect(parsed.flags.opcode == .status && parsed.flags.rd)
        #expect(DNSMessage.decodeHeader(Array(bytes.prefix(11))) == nil)
    }

    // MARK: Encoding

    @Test func compressionPointsAtEarlierSuffixesAndKeepsFirstSpelling() throws {
        let message = DNSMessage(
            id: 7, flags: DNSHeaderFlags(qr: true, aa: true),
            questions: [DNSQuestion(name: name("WWW.Example.COM"), type: .a)],
            answers: [
                record("www.example.com", .a(IPv4Address(192, 0, 2, 1))),
                record("mail.example.com", .mx(preference: 10, exchange: name("example.com"))),
                record("example.com", .srv(priority: 1, weight: 2, port: 3, target: name("www.example.com"))),
            ])
        let bytes = message.encode()
        // Question name at 12: 3 "WWW" 7 "Example" 3 "COM" 0, then type and class → 33.
        #expect(Array(bytes[12..<17]) == [3, 0x57, 0x57, 0x57, 7])
        // First answer owner is the whole question name: a pointer to offset 12.
        #expect(Array(bytes[33..<35]) == [0xC0, 0x0C])
        // A RR: 2 + 10 + 4 bytes → the MX owner starts at 49 with "mail", then a pointer to
        // "Example.COM" at 16.
        #expect(Array(bytes[49..<56]) == [4] + Array("mail".utf8) + [0xC0, 0x10])
        // MX RDATA: preference, then the exchange `example.com` compressed to the same pointer.
        #expect(Array(bytes[66..<70]) == [0, 10, 0xC0, 0x10])
        // The SRV owner is compressed, its target is not (RFC 2782).
        #expect(Array(bytes[70..<72]) == [0xC0, 0x10])
        #expect(Array(bytes[88...]) == [3] + Array("www".utf8) + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0])

        let decoded = try DNSMessage.decode(bytes)
        #expect(decoded.answers == message.answers)
        #expect(decoded.answers[0].name.description == "WWW.Example.COM.")
    }

    static let roundTripRecords: [DNSResourceRecord] = [
        record("a.example", .a(IPv4Address(10, 0, 0, 1))),
        record("a.example", .aaaa(IPv6Address("2001:db8::1")!)),
        record("b.example", .cname(name("a.example"))),
        record("example", .ns(name("ns1.example"))),
        record("example", .mx(preference: 5, exchange: name("mx.example"))),
        record("t.example", .txt(["v=spf1 -all", "", "ünïcode"])),
        record("_sip._tcp.example", .srv(priority: 10, weight: 60, port: 5060, target: name("sip.example"))),
        record("example", .soa(mname: name("ns1.example"), rname: name("host\\.master.example"), serial: 2_024_010_101, refresh: 7200, retry: 900, expire: 1_209_600, minimum: 300), ttl: 0),
        record("x.example", .unknown(type: 99, bytes: [1, 2, 3])),
        record("x.example", .unknown(type: 65280, bytes: [])),
        DNSResourceRecord(name: name("c.example"), ttl: .max, data: .a(IPv4Address(value: 0xFFFF_FFFF)), dnsClass: 3),
    ]

    @Test(arguments: roundTripRecords)
    func recordRoundTrips(_ rr: DNSResourceRecord) throws {
        let message = DNSMessage(id: 9, flags: DNSHeaderFlags(qr: true), answers: [rr], authorities: [rr], additionals: [rr], edns: EDNS())
        let decoded = try DNSMessage.decode(message.encode())
        #expect(decoded == message)
        #expect(decoded.answers.first?.type == rr.type)
    }

    @Test func longTXTIsSplitInto255BytePieces() throws {
        let long = String(repeating: "x", count: 300)
        let bytes = DNSMessage(answers: [record("t.example", .txt([long]))]).encode()
        #expect(try DNSMessage.decode(bytes).answers[0].data == .txt([String(repeating: "x", count: 255), String(repeating: "x", count: 45)]))
    }

    @Test func extendedRCodeIsSplitBetweenHeaderAndOPT() throws {
        var message = DNSMessage(id: 1, flags: DNSHeaderFlags(qr: true), rcode: .badVers, edns: EDNS())
        var bytes = message.encode()
        #expect(bytes[3] & 0x0F == 0)  // header RCODE bits
        #expect(bytes[12 + 5] == 1)  // OPT EXTENDED-RCODE: 16 >> 4
        #expect(try DNSMessage.decode(bytes).rcode == .badVers)
        // Without OPT there is nowhere to put the upper bits: SERVFAIL, not NOERROR.
        message.edns = nil
        bytes = message.encode()
        #expect(bytes[3] & 0x0F == 2)
    }

    // MARK: Truncation

    @Test func oversizedMessageIsTruncatedToQuestionAndOPT() throws {
        let answers = (0..<100).map { record("many.example", .a(IPv4Address(10, 0, 0, UInt8($0)))) }
        let message = DNSMessage(
            id: 3, flags: DNSHeaderFlags(qr: true, aa: true), questions: [DNSQuestion(name: name("many.example"), type: .a)],
            answers: answers, authorities: [record("example", .ns(name("ns.example")))], edns: EDNS())
        #expect(message.encode().count > 512)
        let bytes = message.encode(maxSize: 512)
        #expect(bytes.count <= 512)
        let truncated = try DNSMessage.decode(bytes)
        #expect(truncated.flags.tc)
        #expect(truncated.questions == message.questions)
        #expect(truncated.answers.isEmpty && truncated.authorities.isEmpty && truncated.additionals.isEmpty)
        #expect(truncated.edns != nil)
        // A message that fits is left alone.
        #expect(try DNSMessage.decode(message.encode(maxSize: 4096)).flags.tc == false)
    }

    @Test func droppingOnlyAdditionalDataDoesNotSetTC() throws {
        let glue = (0..<40).map { record("ns.example", .a(IPv4Address(10, 0, 1, UInt8($0)))) }
        let message = DNSMessage(flags: DNSHeaderFlags(qr: true), answers: [record("example", .ns(name("ns.example")))], additionals: glue)
        let decoded = try DNSMessage.decode(message.encode(maxSize: 512))
        #expect(!decoded.flags.tc)
        #expect(decoded.answers.count == 1 && decoded.additionals.isEmpty)
    }

    // MARK: Malformed input

    struct Malformed: CustomTestStringConvertible, Sendable {
        let label: String
        let bytes: [UInt8]
        let error: DNSDecodingError
        var testDescription: String { label }
    }

    /// A root label at `start` followed by `count` pointers, each to the one before it.
    private static func pointerChain(start: Int, count: Int) -> [UInt8] {
        [0] + (0..<count).flatMap { index -> [UInt8] in
            let target = index == 0 ? start : start + 2 * index - 1
            return [0xC0 | UInt8(target >> 8), UInt8(target & 0xFF)]
        }
    }

    static let malformed: [Malformed] = {
        let q = header(counts: [1, 0, 0, 0])
        let qa = header(counts: [1, 1, 0, 0])
        let longLabel = [UInt8](repeating: 0x61, count: 63)
        // Pointer-chain fixture: question `a.` at 12, then an answer of TYPE 99 whose RDATA is the
        // chain, then a second answer whose owner points at the chain's last pointer.
        let chain = pointerChain(start: 30, count: 70)
        let chainOwner = 30 + 1 + 2 * 69
        let chained = header(counts: [1, 2, 0, 0]) + [1, 0x61, 0, 0, 1, 0, 1] + [0] + fixed(type: 99, rdlength: UInt16(chain.count)) + chain
            + [0xC0 | UInt8(chainOwner >> 8), UInt8(chainOwner & 0xFF)] + fixed(type: 1, rdlength: 4) + [1, 2, 3, 4]
        // Four 63-byte labels joined by pointers: 256 bytes decompressed.
        let hop = { (target: Int) -> [UInt8] in [63] + longLabel + [0xC0, UInt8(target)] }
        let grown = header(counts: [1, 2, 0, 0]) + [1, 0x61, 0, 0, 1, 0, 1] + [0] + fixed(type: 99, rdlength: 66 * 3 + 1)
            + [0] + hop(30) + hop(31) + hop(97) + [63] + longLabel + [0xC0, 163] + fixed(type: 1, rdlength: 4) + [1, 2, 3, 4]
        return [
            Malformed(label: "11-byte header", bytes: Array(q.prefix(11)), error: .truncated),
            Malformed(label: "0xFFFF counts, no data", bytes: header(counts: [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]), error: .truncated),
            Malformed(label: "question cut short", bytes: q + exampleQuestion.dropLast(2), error: .truncated),
            Malformed(label: "name runs off the end", bytes: q + [7] + Array("exa".utf8), error: .truncated),
            Malformed(label: "label of 64", bytes: q + [64] + [UInt8](repeating: 0x61, count: 64) + [0, 0, 1, 0, 1], error: .invalidLabelType(64)),
            Malformed(label: "label type 10", bytes: q + [0x80, 0, 0, 1, 0, 1], error: .invalidLabelType(0x80)),
            Malformed(label: "pointer to itself", bytes: q + [0xC0, 12, 0, 1, 0, 1], error: .invalidPointer(12)),
            Malformed(label: "forward pointer", bytes: q + [0xC0, 14, 1, 0x61, 0, 0, 1, 0, 1], error: .invalidPointer(14)),
            Malformed(label: "pointer loop b → a-owner → b", bytes: qa + [1, 0x61, 0, 0, 1, 0, 1] + [1, 0x62, 0xC0, 19] + fixed(type: 1, rdlength: 4) + [1, 2, 3, 4], error: .invalidPointer(19)),
            Malformed(label: "pointer cut in half", bytes: q + [0xC0], error: .truncated),
            Malformed(label: "70 chained pointers", bytes: chained, error: .tooManyPointers),
            Malformed(label: "name > 255 bytes inline", bytes: q + [63] + longLabel + [63] + longLabel + [63] + longLabel + [63] + longLabel + [0, 0, 1, 0, 1], error: .nameTooLong),
            Malformed(label: "name > 255 bytes via pointers", bytes: grown, error: .nameTooLong),
            Malformed(label: "rdata shorter than RDLENGTH", bytes: qa + exampleQuestion + [0xC0, 12] + fixed(type: 1, rdlength: 4) + [1, 2], error: .truncated),
            Malformed(label: "A with RDLENGTH 5", bytes: qa + exampleQuestion + [0xC0, 12] + fixed(type: 1, rdlength: 5) + [1, 2, 3, 4, 5], error: .rdataLengthMismatch(.a)),
            Malformed(label: "MX with RDLENGTH 3", bytes: qa + exampleQuestion + [0xC0, 12] + fixed(type: 15, rdlength: 3) + [0, 1, 1, 0x61, 0], error: .rdataLengthMismatch(.mx)),
            Malformed(label: "CNAME name longer than RDLENGTH", bytes: qa + exampleQuestion + [0xC0, 12] + fixed(type: 5, rdlength: 2) + [1, 0x61, 0], error: .rdataLengthMismatch(.cname)),
            Malformed(label: "TXT string past RDLENGTH", bytes: qa + exampleQuestion + [0xC0, 12] + fixed(type: 16, rdlength: 3) + [5, 0x61, 0x62], error: .rdataLengthMismatch(.txt)),
            Malformed(label: "trailing garbage", bytes: digQueryNoEDNS + [0xDE, 0xAD, 0x00], error: .trailingBytes(3)),
            Malformed(label: "two OPT records", bytes: header(counts: [1, 0, 0, 2]) + exampleQuestion + optRecord + optRecord, error: .multipleOPT),
            Malformed(label: "OPT in the answer section", bytes: qa + exampleQuestion + optRecord, error: .misplacedOPT),
            Malformed(label: "OPT with a non-root owner", bytes: header(counts: [1, 0, 0, 1]) + exampleQuestion + [0xC0, 12] + optRecord.dropFirst(), error: .misplacedOPT),
            Malformed(label: "OPT option longer than RDATA", bytes: header(counts: [1, 0, 0, 1]) + exampleQuestion + optRecord.dropLast(2) + [0, 4, 0, 10, 0, 8], error: .malformedOption),
        ]
    }()

    @Test(arguments: malformed)
    func malformedPacketsAreRejected(_ testCase: Malformed) {
        #expect(throws: testCase.error) { try DNSMessage.decode(testCase.bytes) }
    }

    @Test func pointerChainsWithinTheLimitDecode() throws {
        // Same shape as the 70-pointer case, but 10 pointers: legal, if silly.
        let chain = Self.pointerChain(start: 30, count: 10)
        let owner = 30 + 1 + 2 * 9
        let bytes = header(counts: [1, 2, 0, 0]) + [1, 0x61, 0, 0, 1, 0, 1] + [0] + fixed(type: 99, rdlength: UInt16(chain.count)) + chain
            + [0xC0, UInt8(owner)] + fixed(type: 1, rdlength: 4) + [1, 2, 3, 4]
        #expect(try DNSMessage.decode(bytes).answers[1].name == .root)
    }

    // MARK: Names

    @Test(arguments: [
        ("example.com", "example.com.", 2),
        ("example.com.", "example.com.", 2),
        (".", ".", 0),
        ("", ".", 0),
        ("a\\.b.c", "a\\.b.c.", 2),
        ("\\065bc", "Abc.", 1),
        ("\\000x", "\\000x.", 1),
        (String(repeating: "a", count: 63) + ".com", String(repeating: "a", count: 63) + ".com.", 2),
    ])
    func namesParseAndPrint(_ text: String, _ printed: String, _ labels: Int) throws {
        let parsed = try DNSName(text)
        #expect(parsed.description == printed)
        #expect(parsed.labelCount == labels)
        #expect(try DNSName(parsed.description) == parsed)
    }

    @Test(arguments: [
        ("a..b", DNSNameError.emptyLabel),
        (".a", .emptyLabel),
        ("a..", .emptyLabel),
        (String(repeating: "a", count: 64) + ".com", .labelTooLong(64)),
        // 4 × 63-byte labels: 4 × 64 + 1 = 257 bytes on the wire.
        (Array(repeating: String(repeating: "a", count: 63), count: 4).joined(separator: "."), .nameTooLong),
        ("a\\", .invalidEscape),
        ("a\\25", .invalidEscape),
        ("a\\256", .invalidEscape),
    ])
    func badNamesAreRejected(_ text: String, _ error: DNSNameError) {
        #expect(throws: error) { try DNSName(text) }
    }

    @Test func longestLegalNameIs255Bytes() throws {
        // 3 × 63 + 61, four labels: 3 × 64 + 62 + 1 = 255.
        let text = Array(repeating: String(repeating: "a", count: 63), count: 3).joined(separator: ".") + "." + String(repeating: "b", count: 61)
        #expect(try DNSName(text).wireLength == 255)
        #expect(throws: DNSNameError.nameTooLong) { try DNSName(text + "b") }
    }

    @Test func namesCompareAndHashCaseInsensitivelyButKeepSpelling() throws {
        let mixed = name("ExAmPlE.CoM")
        #expect(mixed == name("example.com"))
        #expect(Set([mixed, name("EXAMPLE.COM.")]).count == 1)
        #expect(mixed.description == "ExAmPlE.CoM.")
        #expect(name("exampl\\233.com") != name("exampl\\201.com"))  // only ASCII folds
    }

    @Test func subdomainsRespectLabelBoundaries() {
        #expect(name("www.Example.com").isSubdomain(of: name("example.COM")))
        #expect(name("example.com").isSubdomain(of: name("example.com")))
        #expect(name("example.com").isSubdomain(of: .root))
        #expect(!name("badexample.com").isSubdomain(of: name("example.com")))
        #expect(!name("com").isSubdomain(of: name("example.com")))
        #expect(name("a.b.example").parent == name("b.example"))
        #expect(DNSName.root.parent == nil)
        #expect(name("*.example").isWildcard && !name("a*.example").isWildcard)
    }

    // MARK: Addresses

    @Test(arguments: [
        ("127.0.0.1", [127, 0, 0, 1] as [UInt8]?), ("255.255.255.255", [255, 255, 255, 255]), ("0.0.0.0", [0, 0, 0, 0]),
        ("256.0.0.1", nil), ("1.2.3", nil), ("1.2.3.4.5", nil), ("01.2.3.4", nil), ("1..2.3", nil), ("1.2.3.4 ", nil),
        ("a.b.c.d", nil), ("", nil), ("-1.2.3.4", nil), ("1.2.3.1000", nil),
    ])
    func ipv4Parsing(_ text: String, _ bytes: [UInt8]?) {
        #expect(IPv4Address(text)?.bytes == bytes)
        if bytes != nil { #expect(IPv4Address(text)?.description == text) }
    }

    @Test(arguments: [
        ("::", "::"), ("::1", "::1"), ("1::", "1::"), ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"), ("::ffff:192.0.2.1", "::ffff:c000:201"),
        ("1:2:3:4:5:6:192.0.2.1", "1:2:3:4:5:6:c000:201"), ("::192.0.2.1", "::c000:201"), ("fe80:0:0:0:1::", "fe80::1:0:0:0"),
    ])
    func ipv6Parsing(_ text: String, _ canonical: String) throws {
        let address = try #require(IPv6Address(text))
        #expect(address.description == canonical)
        #expect(IPv6Address(canonical) == address)
    }

    @Test(arguments: [
        "", ":", ":::", "1:::2", "1::2::3", ":1::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::",
        "12345::", "g::", "::1.2.3", "1.2.3.4::", "::1.2.3.4:5", "fe80::1%eth0", "1:2:3:4:5:6:7:1.2.3.4", " ::1",
        "::256.0.0.1", "1::2:",
    ])
    func badIPv6IsRejected(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }
}
