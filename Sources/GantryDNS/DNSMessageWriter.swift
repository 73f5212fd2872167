import GantryCore

/// Appends wire-format data, compressing names (RFC 1035 §4.1.4).
struct DNSMessageWriter {
    private(set) var bytes: [UInt8] = []
    /// Where each name suffix was first written. Keys compare case-insensitively, so a later
    /// `WWW.Example.com` points at an earlier `www.example.com` and takes its spelling, which is
    /// fine because names are case-insensitive (RFC 4343 §3).
    private var suffixOffsets: [DNSName: Int] = [:]

    /// Pointers carry 14 bits of offset.
    private static let maxPointerOffset = 0x3FFF

    init() {
        bytes.reserveCapacity(512)
    }

    mutating func writeU8(_ value: UInt8) {
        bytes.append(value)
    }

    mutating func writeU16(_ value: UInt16) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func writeU32(_ value: UInt32) {
        writeU16(UInt16(value >> 16))
        writeU16(UInt16(truncatingIfNeeded: value))
    }

    mutating func patchU16(_ value: UInt16, at offset: Int) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    /// Writes `name`, replacing the longest suffix already in the packet with a pointer when
    /// `compress` is set. Every suffix written here, compressed or not, becomes a target for later
    /// names: a pointer may refer to any earlier occurrence.
    mutating func writeName(_ name: DNSName, compress: Bool) {
        for labelOffset in name.labelOffsets {
            let suffix = name.suffix(fromWireOffset: labelOffset)
            if compress, let target = suffixOffsets[suffix] {
                writeU16(0xC000 | UInt16(target))
                return
            }
            if bytes.count <= Self.maxPointerOffset, suffixOffsets[suffix] == nil {
                suffixOffsets[suffix] = bytes.count
            }
            let length = Int(name.wire[labelOffset])
            bytes.append(contentsOf: name.wire[labelOffset...(labelOffset + length)])
        }
        writeU8(0)
    }

    mutating func writeQuestion(_ question: DNSQuestion) {
        writeName(question.name, compress: true)
        writeU16(question.type.rawValue)
        writeU16(question.dnsClass)
    }

    mutating func writeRecord(_ record: DNSResourceRecord) {
        writeName(record.name, compress: true)
        writeU16(record.type.rawValue)
        writeU16(record.dnsClass)
        writeU32(record.ttl)
        let lengthOffset = bytes.count
        writeU16(0)
        writeRData(record.data)
        patchU16(UInt16(clamping: bytes.count - lengthOffset - 2), at: lengthOffset)
    }

    /// The OPT pseudo-record (RFC 6891 §6.1.2): root owner, payload size in CLASS, extended RCODE,
    /// version and flags in TTL.
    mutating func writeOPT(_ edns: EDNS, extendedRCode: UInt8) {
        writeU8(0)
        writeU16(DNSRecordType.opt.rawValue)
        writeU16(edns.udpPayloadSize)
        writeU8(extendedRCode)
        writeU8(edns.version)
        writeU16((edns.dnssecOK ? 0x8000 : 0) | (edns.z & 0x7FFF))
        let lengthOffset = bytes.count
        writeU16(0)
        for option in edns.options {
            let data = option.data.prefix(Int(UInt16.max))
            // Stop rather than emit an RDLENGTH that wraps around.
            guard bytes.count - lengthOffset - 2 + 4 + data.count <= Int(UInt16.max) else { break }
            writeU16(option.code)
            writeU16(UInt16(data.count))
            bytes.append(contentsOf: data)
        }
        patchU16(UInt16(bytes.count - lengthOffset - 2), at: lengthOffset)
    }

    /// Names in the RDATA of the RFC 1035 types (NS, CNAME, SOA, MX) may be compressed; SRV
    /// targets must not be (RFC 2782), nor names in types a receiver may not know (RFC 3597 §4).
    private mutating func writeRData(_ data: DNSRecordData) {
        switch data {
        case .a(let address):
            writeU32(address.value)
        case .aaaa(let address):
            bytes.append(contentsOf: address.bytes)
        case .cname(let name), .ns(let name):
            writeName(name, compress: true)
        case .mx(let preference, let exchange):
            writeU16(preference)
            writeName(exchange, compress: true)
        case .txt(let strings):
            writeCharacterStrings(strings)
        case .srv(let priority, let weight, let port, let target):
            writeU16(priority)
            writeU16(weight)
            writeU16(port)
            writeName(target, compress: false)
        case .soa(let mname, let rname, let serial, let refresh, let retry, let expire, let minimum):
            writeName(mname, compress: true)
            writeName(rname, compress: true)
            for value in [serial, refresh, retry, expire, minimum] { writeU32(value) }
        case .unknown(_, let raw):
            bytes.append(contentsOf: raw.prefix(Int(UInt16.max)))
        }
    }

    /// Each string becomes one or more ≤ 255-byte character-strings (RFC 1035 §3.3). Output stops
    /// before RDATA would pass 65535 bytes; `DNSZone` rejects records that large up front.
    private mutating func writeCharacterStrings(_ strings: [String]) {
        let start = bytes.count
        for string in strings {
            let utf8 = Array(string.utf8)
            var pieceStart = 0
            repeat {
                let piece = utf8[pieceStart..<min(pieceStart + 255, utf8.count)]
                guard bytes.count - start + 1 + piece.count <= Int(UInt16.max) else { return }
                writeU8(UInt8(piece.count))
                bytes.append(contentsOf: piece)
                pieceStart += 255
            } while pieceStart < utf8.count
        }
    }
}
