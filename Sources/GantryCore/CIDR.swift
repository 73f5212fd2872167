/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, or a single address),
/// for allow and deny lists. Addresses are compared as 128-bit values; IPv4 lives in its own
/// space (an IPv4-mapped IPv6 client address is treated as IPv4).
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let description: String
    let isIPv6: Bool
    let address: (UInt64, UInt64)
    let prefix: Int

    public static func == (lhs: CIDR, rhs: CIDR) -> Bool { lhs.description == rhs.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let parsed = Self.parse(String(parts[0])) else { return nil }
        let width = parsed.isIPv6 ? 128 : 32
        let prefix = parts.count == 2 ? Int(parts[1]) : width
        guard let prefix, (0...width).contains(prefix), parts.count == 1 || !parts[1].isEmpty else { return nil }
        self.description = text
        self.isIPv6 = parsed.isIPv6
        self.prefix = parsed.isIPv6 ? prefix : prefix + 96
        self.address = Self.masked(parsed.value, prefix: self.prefix)
    }

    public func contains(_ ip: String) -> Bool {
        guard let parsed = Self.parse(ip), parsed.isIPv6 == isIPv6 else { return false }
        return Self.masked(parsed.value, prefix: prefix) == address
    }

    static func masked(_ value: (UInt64, UInt64), prefix: Int) -> (UInt64, UInt64) {
        let high: UInt64 = prefix >= 64 ? ~0 : (prefix == 0 ? 0 : ~0 << (64 - prefix))
        let low: UInt64 = prefix <= 64 ? 0 : (prefix >= 128 ? ~0 : ~0 << (128 - prefix))
        return (value.0 & high, value.1 & low)
    }

    /// An address as 128 bits; IPv4 in the low 32 bits, IPv4-mapped IPv6 as IPv4.
    static func parse(_ text: String) -> (isIPv6: Bool, value: (UInt64, UInt64))? {
        if !text.contains(":") { return parseIPv4(text).map { (false, (0, UInt64($0))) } }
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        var groups: [UInt16] = []
        var embeddedIPv4: UInt32?
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groupsOf(_ part: String, allowIPv4: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if allowIPv4, index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = parseIPv4(String(piece)) else { return nil }
                    embeddedIPv4 = v4
                    result += [UInt16(v4 >> 16), UInt16(v4 & 0xffff)]
                } else {
                    guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                    result.append(value)
                }
            }
            return result
        }
        if halves.count == 2 {
            guard let head = groupsOf(halves[0], allowIPv4: false), let tail = groupsOf(halves[1], allowIPv4: true),
                head.count + tail.count < 8
            else { return nil }
            groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = groupsOf(halves[0], allowIPv4: true), all.count == 8 else { return nil }
            groups = all
        }
        let high = groups[0..<4].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        let low = groups[4..<8].reduce(UInt64(0)) { $0 << 16 | UInt64($1) }
        if high == 0, low >> 32 == 0xffff, let v4 = embeddedIPv4 ?? Optional(UInt32(low & 0xffff_ffff)) {
            return (false, (0, UInt64(v4)))  // ::ffff:a.b.c.d
        }
        return (true, (high, low))
    }

    static func parseIPv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let octet = UInt32(part), octet <= 255,
                part.count == 1 || part.first != "0"
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }
}
