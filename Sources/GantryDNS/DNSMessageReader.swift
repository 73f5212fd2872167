import GantryCore

/// A bounds-checked cursor over a received packet. Every read checks its length first and throws
/// `.truncated` rather than trapping, so no input can crash the decoder.
struct DNSMessageReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    /// A hard cap on compression jumps per name. The "strictly backwards" rule below already
    /// guarantees termination; this bounds the work of a name even in a 64 KiB packet.
    static let maxPointers = 64

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func readU8() throws(DNSDecodingError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readU16() throws(DNSDecodingError) -> UInt16 {
        guard remaining >= 2 else { throw .truncated }
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    mutating func readU32() throws(DNSDecodingError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated }
        defer { offset += 4 }
        return (offset..<offset + 4).reduce(0) { $0 << 8 | UInt32(bytes[$1]) }
    }

    mutating func readBytes(_ count: Int) throws(DNSDecodingError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// Reads a possibly compressed name (RFC 1035 §4.1.4).
    ///
    /// A pointer must point strictly below the lowest offset this name has read so far. Real
    /// compressors only ever point at names written earlier, so this accepts every legitimate
    /// packet, and it makes each jump go strictly backwards: forward pointers, self pointers and
    /// loops (`A → B → A`) are all rejected, and the walk must terminate.
    mutating func readName() throws(DNSDecodingError) -> DNSName {
        var wire: [UInt8] = []
        var position = offset
        var lowestRead = offset
        var resumeAt: Int?
        var jumps = 0
        while true {
            guard position < bytes.count else { throw .truncated }
            let length = bytes[position]
            switch length & 0xC0 {
            case 0x00:
                if length == 0 {
                    offset = resumeAt ?? position + 1
                    return DNSName(uncheckedWire: wire)
                }
                let end = position + 1 + Int(length)
                guard end <= bytes.count else { throw .truncated }
                guard wire.count + 1 + Int(length) + 1 <= DNSName.maxWireLength else { throw .nameTooLong }
                wire.append(contentsOf: bytes[position..<end])
                position = end
            case 0xC0:
                guard position + 1 < bytes.count else { throw .truncated }
                let target = Int(length & 0x3F) << 8 | Int(bytes[position + 1])
                guard target < lowestRead else { throw .invalidPointer(target) }
                jumps += 1
                guard jumps <= Self.maxPointers else { throw .tooManyPointers }
                if resumeAt == nil { resumeAt = position + 2 }
                position = target
                lowestRead = target
            default:
                throw .invalidLabelType(length)
            }
        }
    }

    mutating func readQuestion() throws(DNSDecodingError) -> DNSQuestion {
        let name = try readName()
        let type = DNSRecordType(rawValue: try readU16())
        let dnsClass = try readU16()
        return DNSQuestion(name: name, type: type, dnsClass: dnsClass)
    }

    /// The fixed part of a record, with the RDATA left unread for the caller to interpret
    /// according to TYPE (OPT reuses CLASS and TTL for other things, RFC 6891 §6.1.2).
    struct RecordHeader {
        var name: DNSName
        var type: DNSRecordType
        var rawClass: UInt16
        var rawTTL: UInt32
        var rdataLength: Int
    }

    mutating func readRecordHeader() throws(DNSDecodingError) -> RecordHeader {
        let name = try readName()
        let type = DNSRecordType(rawValue: try readU16())
        let rawClass = try readU16()
        let rawTTL = try readU32()
        let rdataLength = Int(try readU16())
        guard remaining >= rdataLength else { throw .truncated }
        return RecordHeader(name: name, type: type, rawClass: rawClass, rawTTL: rawTTL, rdataLength: rdataLength)
    }

    /// Interprets `length` bytes of RDATA of `type`. Names inside may point anywhere earlier in
    /// the packet, but what they consume at this position must end exactly at RDLENGTH.
    mutating func readRData(type: DNSRecordType, length: Int) throws(DNSDecodingError) -> DNSRecordData {
        let end = offset + length
        guard end <= bytes.count else { throw .truncated }
        let data: DNSRecordData
        switch type {
        case .a:
            guard length == 4 else { throw .rdataLengthMismatch(type) }
            data = .a(IPv4Address(value: try readU32()))
        case .aaaa:
            guard length == 16, let address = IPv6Address(bytes: try readBytes(16)) else { throw .rdataLengthMismatch(type) }
            data = .aaaa(address)
        case .cname:
            data = .cname(try readName())
        case .ns:
            data = .ns(try readName())
        case .mx:
            data = .mx(preference: try readU16(), exchange: try readName())
        case .txt:
            var strings: [String] = []
            while offset < end {
                let count = Int(try readU8())
                guard offset + count <= end else { throw .rdataLengthMismatch(type) }
                strings.append(String(decoding: try readBytes(count), as: UTF8.self))
            }
            data = .txt(strings)
        case .srv:
            data = .srv(priority: try readU16(), weight: try readU16(), port: try readU16(), target: try readName())
        case .soa:
            data = .soa(
                mname: try readName(), rname: try readName(), serial: try readU32(), refresh: try readU32(),
                retry: try readU32(), expire: try readU32(), minimum: try readU32())
        default:
            data = .unknown(type: type.rawValue, bytes: try readBytes(length))
        }
        guard offset == end else { throw .rdataLengthMismatch(type) }
        return data
    }

    /// Parses OPT RDATA into options; they must tile RDLENGTH exactly (RFC 6891 §6.1.2).
    mutating func readOptions(length: Int) throws(DNSDecodingError) -> [EDNSOption] {
        let end = offset + length
        var options: [EDNSOption] = []
        while offset < end {
            guard end - offset >= 4 else { throw .malformedOption }
            let code = try readU16()
            let count = Int(try readU16())
            guard end - offset >= count else { throw .malformedOption }
            options.append(EDNSOption(code: code, data: try readBytes(count)))
        }
        return options
    }
}
