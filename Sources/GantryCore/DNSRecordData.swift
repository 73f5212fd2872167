/// The RDATA of a resource record, interpreted for the types we serve (RFC 1035 §3.3–3.4,
/// RFC 3596, RFC 2782). Anything else is kept as opaque bytes (RFC 3597 §5).
public enum DNSRecordData: Hashable, Sendable, CustomStringConvertible {
    case a(IPv4Address)
    case aaaa(IPv6Address)
    case cname(DNSName)
    case ns(DNSName)
    case mx(preference: UInt16, exchange: DNSName)
    /// Character-strings. On the wire each is at most 255 bytes (RFC 1035 §3.3); a longer string
    /// is split into 255-byte pieces when encoding, as zone tools do for long SPF/DKIM values.
    /// Bytes that are not UTF-8 are replaced with U+FFFD when decoding.
    case txt([String])
    case srv(priority: UInt16, weight: UInt16, port: UInt16, target: DNSName)
    case soa(mname: DNSName, rname: DNSName, serial: UInt32, refresh: UInt32, retry: UInt32, expire: UInt32, minimum: UInt32)
    /// RDATA of any other type, verbatim. Also what an A/AAAA/... of the wrong length would be if
    /// built by hand, which is why `type` is stored.
    case unknown(type: UInt16, bytes: [UInt8])

    public var type: DNSRecordType {
        switch self {
        case .a: .a
        case .aaaa: .aaaa
        case .cname: .cname
        case .ns: .ns
        case .mx: .mx
        case .txt: .txt
        case .srv: .srv
        case .soa: .soa
        case .unknown(let type, _): DNSRecordType(rawValue: type)
        }
    }

    /// The name that additional-section processing looks up A/AAAA for (RFC 1035 §3.3.9,
    /// §3.3.11, RFC 2782).
    package var additionalTarget: DNSName? {
        switch self {
        case .ns(let name): name
        case .mx(_, let exchange): exchange
        case .srv(_, _, _, let target): target.isRoot ? nil : target
        default: nil
        }
    }

    /// Zone-file presentation form of the RDATA.
    public var description: String {
        switch self {
        case .a(let address): address.description
        case .aaaa(let address): address.description
        case .cname(let name), .ns(let name): name.description
        case .mx(let preference, let exchange): "\(preference) \(exchange)"
        case .txt(let strings): strings.map(Self.quoted).joined(separator: " ")
        case .srv(let priority, let weight, let port, let target): "\(priority) \(weight) \(port) \(target)"
        case .soa(let mname, let rname, let serial, let refresh, let retry, let expire, let minimum):
            "\(mname) \(rname) \(serial) \(refresh) \(retry) \(expire) \(minimum)"
        case .unknown(_, let bytes):
            // RFC 3597 §5 generic form.
            "\\# \(bytes.count)" + (bytes.isEmpty ? "" : " " + bytes.map { hex($0) }.joined())
        }
    }

    private static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            if scalar == "\"" || scalar == "\\" { result += "\\" }
            result.unicodeScalars.append(scalar)
        }
        return result + "\""
    }
}

private func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
}
