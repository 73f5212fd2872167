/// The 4-bit OPCODE header field (RFC 1035 §4.1.1, RFC 1996, RFC 2136).
public struct DNSOpcode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8

    /// Keeps only the low four bits: the field is four bits wide on the wire.
    public init(rawValue: UInt8) {
        self.rawValue = rawValue & 0x0F
    }

    public static let query = DNSOpcode(rawValue: 0)
    public static let iquery = DNSOpcode(rawValue: 1)
    public static let status = DNSOpcode(rawValue: 2)
    public static let notify = DNSOpcode(rawValue: 4)
    public static let update = DNSOpcode(rawValue: 5)

    public var description: String {
        switch rawValue {
        case 0: "QUERY"
        case 1: "IQUERY"
        case 2: "STATUS"
        case 4: "NOTIFY"
        case 5: "UPDATE"
        default: "OPCODE\(rawValue)"
        }
    }
}
