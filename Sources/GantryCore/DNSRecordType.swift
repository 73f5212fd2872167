/// An RR TYPE (RFC 1035 §3.2.2, IANA "Resource Record (RR) TYPEs").
///
/// A struct rather than an enum so that any 16-bit value read from the wire survives a decode →
/// encode round trip unchanged (RFC 3597 §2): the static constants name the types we interpret.
public struct DNSRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let a = DNSRecordType(rawValue: 1)
    public static let ns = DNSRecordType(rawValue: 2)
    public static let cname = DNSRecordType(rawValue: 5)
    public static let soa = DNSRecordType(rawValue: 6)
    public static let mx = DNSRecordType(rawValue: 15)
    public static let txt = DNSRecordType(rawValue: 16)
    public static let aaaa = DNSRecordType(rawValue: 28)
    public static let srv = DNSRecordType(rawValue: 33)
    public static let opt = DNSRecordType(rawValue: 41)
    public static let ixfr = DNSRecordType(rawValue: 251)
    public static let axfr = DNSRecordType(rawValue: 252)
    public static let any = DNSRecordType(rawValue: 255)

    /// Any other type, kept as its number.
    public static func other(_ rawValue: UInt16) -> DNSRecordType {
        DNSRecordType(rawValue: rawValue)
    }

    private static let names: [UInt16: String] = [
        1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
        41: "OPT", 251: "IXFR", 252: "AXFR", 255: "ANY",
    ]

    /// The mnemonic, or `TYPEnnn` for types without one (RFC 3597 §5).
    public var description: String {
        Self.names[rawValue] ?? "TYPE\(rawValue)"
    }
}

/// CLASS values (RFC 1035 §3.2.4). Classes stay plain `UInt16` in the API; only IN matters here.
public enum DNSClass {
    public static let internet: UInt16 = 1
    public static let chaos: UInt16 = 3
    public static let any: UInt16 = 255
}
