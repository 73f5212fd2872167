import GantryCore

// No Swift DNS package exists in our package set, so the wire format (RFC 1035, 3596, 2782, 6891) is written by hand here.

/// A DNS message (RFC 1035 §4.1). The OPT pseudo-record is not kept among `additionals` but
/// lifted into `edns`, and the response code is kept whole in `rcode` (header bits plus the EDNS
/// extension), so callers never have to reassemble either.
public struct DNSMessage: Hashable, Sendable {
    public var id: UInt16
    public var flags: DNSHeaderFlags
    /// The full 12-bit response code. When encoding, the low four bits go in the header and the
    /// upper eight in the OPT record; a code above 15 cannot be expressed without `edns` and is
    /// then sent as SERVFAIL rather than as a misleading low-bits-only value.
    public var rcode: DNSResponseCode
    public var questions: [DNSQuestion]
    public var answers: [DNSResourceRecord]
    public var authorities: [DNSResourceRecord]
    /// Additional records other than OPT.
    public var additionals: [DNSResourceRecord]
    public var edns: EDNS?

    public init(
        id: UInt16 = 0, flags: DNSHeaderFlags = DNSHeaderFlags(), rcode: DNSResponseCode = .noError,
        questions: [DNSQuestion] = [], answers: [DNSResourceRecord] = [], authorities: [DNSResourceRecord] = [],
        additionals: [DNSResourceRecord] = [], edns: EDNS? = nil
    ) {
        self.id = id
        self.flags = flags
        self.rcode = rcode
        self.questions = questions
        self.answers = answers
        self.authorities = authorities
        self.additionals = additionals
        self.edns = edns
    }

    // MARK: Decoding

    /// Just the fixed header, for answering FORMERR with the query's ID when `decode` fails.
    /// Nil when the packet is shorter than a header.
    public static func decodeHeader(_ bytes: [UInt8]) -> DNSHeader? {
        DNSHeader(bytes: bytes)
    }

    /// Decodes a whole message. Never traps: every length is checked before it is used, names
    /// are bounded (see `DNSMessageReader.readName`), and the header counts are only loop bounds,
    /// never allocation sizes; each iteration consumes at least five bytes or throws, so a
    /// 0xFFFF count over an empty body fails at the first record. Trailing bytes after the last
    /// counted record are rejected (`.trailingBytes`).
    public static func decode(_ bytes: [UInt8]) throws(DNSDecodingError) -> DNSMessage {
        guard let header = DNSHeader(bytes: bytes) else { throw .truncated }
        var reader = DNSMessageReader(bytes, offset: DNSHeader.size)
        var message = DNSMessage(id: header.id, flags: header.flags)
        var extendedRCode: UInt8 = 0

        for _ in 0..<header.questionCount {
            message.questions.append(try reader.readQuestion())
        }
        for _ in 0..<header.answerCount {
            message.answers.append(try readPlainRecord(&reader))
        }
        for _ in 0..<header.authorityCount {
            message.authorities.append(try readPlainRecord(&reader))
        }
        for _ in 0..<header.additionalCount {
            switch try readRecord(&reader) {
            case .record(let record):
                message.additionals.append(record)
            case .opt(let edns, let extendedBits):
                guard message.edns == nil else { throw .multipleOPT }
                message.edns = edns
                extendedRCode = extendedBits
            }
        }
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
        message.rcode = DNSResponseCode(rawValue: UInt16(extendedRCode) << 4 | UInt16(header.rcodeBits))
        return message
    }

    private enum DecodedRecord {
        case record(DNSResourceRecord)
        case opt(EDNS, extendedRCode: UInt8)
    }

    /// RFC 6891 §6.1.1: OPT lives only in the additional section.
    private static func readPlainRecord(_ reader: inout DNSMessageReader) throws(DNSDecodingError) -> DNSResourceRecord {
        guard case .record(let record) = try readRecord(&reader) else { throw .misplacedOPT }
        return record
    }

    private static func readRecord(_ reader: inout DNSMessageReader) throws(DNSDecodingError) -> DecodedRecord {
        let header = try reader.readRecordHeader()
        guard header.type == .opt else {
            let data = try reader.readRData(type: header.type, length: header.rdataLength)
            return .record(DNSResourceRecord(name: header.name, ttl: header.rawTTL, data: data, dnsClass: header.rawClass))
        }
        // RFC 6891 §6.1.1: the OPT owner is the root.
        guard header.name.isRoot else { throw .misplacedOPT }
        let options = try reader.readOptions(length: header.rdataLength)
        let ttl = header.rawTTL
        let edns = EDNS(
            udpPayloadSize: header.rawClass, version: UInt8(truncatingIfNeeded: ttl >> 16),
            dnssecOK: ttl & 0x8000 != 0, z: UInt16(truncatingIfNeeded: ttl) & 0x7FFF, options: options)
        return .opt(edns, extendedRCode: UInt8(ttl >> 24))
    }

    // MARK: Encoding

    /// Encodes the message with name compression.
    ///
    /// With `maxSize`, a message that would not fit is cut down (RFC 2181 §9, RFC 6891 §7):
    /// first the additional section alone is dropped, without TC, since additional data is
    /// optional and its absence needs no retry; if that is still too big, answers, authorities
    /// and additionals all go and TC is set, keeping the question and the OPT record so the
    /// client can retry over TCP or with a bigger buffer. The result can exceed `maxSize` only
    /// when the header, question and OPT alone do, which no `maxSize` ≥ 512 allows.
    public func encode(maxSize: Int? = nil) -> [UInt8] {
        let full = encode(answers: answers, authorities: authorities, additionals: additionals, truncated: flags.tc)
        guard let maxSize, full.count > maxSize else { return full }
        if !additionals.isEmpty {
            let withoutAdditional = encode(answers: answers, authorities: authorities, additionals: [], truncated: flags.tc)
            if withoutAdditional.count <= maxSize { return withoutAdditional }
        }
        return encode(answers: [], authorities: [], additionals: [], truncated: true)
    }

    private func encode(answers: [DNSResourceRecord], authorities: [DNSResourceRecord], additionals: [DNSResourceRecord], truncated: Bool) -> [UInt8] {
        // A section longer than its 16-bit count can say is cut at 65535 entries; such a message
        // could never be sent anyway.
        let limit = Int(UInt16.max)
        let questions = questions.prefix(limit)
        let answers = answers.prefix(limit)
        let authorities = authorities.prefix(limit)
        let additionals = additionals.prefix(edns == nil ? limit : limit - 1)

        var flags = flags
        flags.tc = truncated
        let rcodeBits = edns == nil && rcode.rawValue > 15 ? DNSResponseCode.servFail.headerBits : rcode.headerBits

        var writer = DNSMessageWriter()
        writer.writeU16(id)
        writer.writeU16(flags.word(rcodeBits: rcodeBits))
        writer.writeU16(UInt16(questions.count))
        writer.writeU16(UInt16(answers.count))
        writer.writeU16(UInt16(authorities.count))
        writer.writeU16(UInt16(additionals.count + (edns == nil ? 0 : 1)))
        questions.forEach { writer.writeQuestion($0) }
        answers.forEach { writer.writeRecord($0) }
        authorities.forEach { writer.writeRecord($0) }
        additionals.forEach { writer.writeRecord($0) }
        if let edns {
            writer.writeOPT(edns, extendedRCode: rcode.extendedBits)
        }
        return writer.bytes
    }
}
