/// The flag bits of the second header word (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD and CD),
/// without RCODE, which `DNSMessage.rcode` owns together with its EDNS extension.
public struct DNSHeaderFlags: Hashable, Sendable {
    public var qr: Bool
    public var opcode: DNSOpcode
    public var aa: Bool
    public var tc: Bool
    public var rd: Bool
    public var ra: Bool
    /// The reserved Z bit; must be zero in responses (RFC 1035 §4.1.1).
    public var z: Bool
    public var ad: Bool
    public var cd: Bool

    public init(qr: Bool = false, opcode: DNSOpcode = .query, aa: Bool = false, tc: Bool = false, rd: Bool = false, ra: Bool = false, z: Bool = false, ad: Bool = false, cd: Bool = false) {
        self.qr = qr
        self.opcode = opcode
        self.aa = aa
        self.tc = tc
        self.rd = rd
        self.ra = ra
        self.z = z
        self.ad = ad
        self.cd = cd
    }

    /// Reads the flags out of the 16-bit header word, ignoring the RCODE bits.
    public init(word: UInt16) {
        qr = word & 0x8000 != 0
        opcode = DNSOpcode(rawValue: UInt8((word >> 11) & 0x0F))
        aa = word & 0x0400 != 0
        tc = word & 0x0200 != 0
        rd = word & 0x0100 != 0
        ra = word & 0x0080 != 0
        z = word & 0x0040 != 0
        ad = word & 0x0020 != 0
        cd = word & 0x0010 != 0
    }

    /// The header word with `rcodeBits` (the low four RCODE bits) filled in.
    public func word(rcodeBits: UInt8) -> UInt16 {
        var word = UInt16(opcode.rawValue) << 11 | UInt16(rcodeBits & 0x0F)
        if qr { word |= 0x8000 }
        if aa { word |= 0x0400 }
        if tc { word |= 0x0200 }
        if rd { word |= 0x0100 }
        if ra { word |= 0x0080 }
        if z { word |= 0x0040 }
        if ad { word |= 0x0020 }
        if cd { word |= 0x0010 }
        return word
    }
}

/// The fixed 12-byte header (RFC 1035 §4.1.1), readable on its own so a server can answer
/// FORMERR with the right ID when the rest of the packet is garbage.
public struct DNSHeader: Hashable, Sendable {
    public static let size = 12

    public var id: UInt16
    public var flags: DNSHeaderFlags
    /// The 4-bit header RCODE, before any EDNS extension.
    public var rcodeBits: UInt8
    public var questionCount: UInt16
    public var answerCount: UInt16
    public var authorityCount: UInt16
    public var additionalCount: UInt16

    /// Nil when fewer than 12 bytes are present.
    public init?(bytes: [UInt8]) {
        guard bytes.count >= Self.size else { return nil }
        func word(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }
        id = word(0)
        flags = DNSHeaderFlags(word: word(2))
        rcodeBits = UInt8(word(2) & 0x0F)
        questionCount = word(4)
        answerCount = word(6)
        authorityCount = word(8)
        additionalCount = word(10)
    }
}
