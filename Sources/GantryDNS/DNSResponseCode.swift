/// A response code, including the extended range that EDNS adds (RFC 6891 §6.1.3): the low four
/// bits travel in the header, the upper eight in the OPT record's TTL field. `DNSMessage` keeps
/// the combined 12-bit value and splits it only when encoding.
public struct DNSResponseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    /// Keeps only the low 12 bits, the width of an extended RCODE.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue & 0x0FFF
    }

    public static let noError = DNSResponseCode(rawValue: 0)
    public static let formErr = DNSResponseCode(rawValue: 1)
    public static let servFail = DNSResponseCode(rawValue: 2)
    public static let nxDomain = DNSResponseCode(rawValue: 3)
    public static let notImp = DNSResponseCode(rawValue: 4)
    public static let refused = DNSResponseCode(rawValue: 5)
    /// Extended: needs an OPT record to be expressed (RFC 6891 §9).
    public static let badVers = DNSResponseCode(rawValue: 16)

    /// The part that fits the header's 4-bit RCODE field.
    public var headerBits: UInt8 { UInt8(rawValue & 0x0F) }
    /// The part carried in the OPT record's EXTENDED-RCODE field.
    public var extendedBits: UInt8 { UInt8(rawValue >> 4) }

    public var description: String {
        switch rawValue {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        case 16: "BADVERS"
        default: "RCODE\(rawValue)"
        }
    }
}
