/// An IPv6 address, the RDATA of an AAAA record (RFC 3596 §2.2).
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible {
    /// Sixteen bytes, network order.
    public let bytes: [UInt8]

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        self.bytes = Array(bytes)
    }

    /// The text forms of RFC 4291 §2.2: eight groups of 1–4 hex digits, at most one `::`
    /// standing for one or more zero groups, and an optional dotted-quad IPv4 tail in the last
    /// 32 bits (`::ffff:192.0.2.1`). Zone identifiers (`%eth0`) are not addresses and give nil.
    public init?(_ text: some StringProtocol) {
        let chars = Array(text.utf8)
        guard !chars.isEmpty, chars.count <= 45 else { return nil }
        let colon = UInt8(ascii: ":")
        var gap: Int?
        for index in 0..<(chars.count - 1) where chars[index] == colon && chars[index + 1] == colon {
            guard gap == nil else { return nil }
            gap = index
        }
        var groups: [UInt16]
        if let gap {
            guard let head = Self.groups(chars[..<gap], mayEndInIPv4: false),
                let tail = Self.groups(chars[(gap + 2)...], mayEndInIPv4: true),
                head.count + tail.count <= 7
            else { return nil }
            groups = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = Self.groups(chars[...], mayEndInIPv4: true), all.count == 8 else { return nil }
            groups = all
        }
        bytes = groups.flatMap { [UInt8($0 >> 8), UInt8(truncatingIfNeeded: $0)] }
    }

    /// Parses colon-separated groups; an empty input is zero groups (one side of a `::`).
    private static func groups(_ chars: ArraySlice<UInt8>, mayEndInIPv4: Bool) -> [UInt16]? {
        guard !chars.isEmpty else { return [] }
        let parts = chars.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        var result: [UInt16] = []
        for (index, part) in parts.enumerated() {
            if mayEndInIPv4, index == parts.count - 1, part.contains(UInt8(ascii: ".")) {
                guard let v4 = IPv4Address(String(decoding: part, as: UTF8.self)) else { return nil }
                result.append(UInt16(v4.value >> 16))
                result.append(UInt16(truncatingIfNeeded: v4.value))
                continue
            }
            guard (1...4).contains(part.count) else { return nil }
            var value: UInt16 = 0
            for char in part {
                guard let digit = hexValue(char) else { return nil }
                value = value << 4 | UInt16(digit)
            }
            result.append(value)
        }
        return result
    }

    private static func hexValue(_ char: UInt8) -> UInt8? {
        switch char {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): char - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): char - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): char - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// The canonical form of RFC 5952 §4: lowercase, no leading zeros, the longest run of two or
    /// more zero groups (the first on a tie) shortened to `::`.
    public var description: String {
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var bestStart = -1
        var bestLength = 1
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8, groups[end] == 0 { end += 1 }
            if end - index > bestLength {
                bestStart = index
                bestLength = end - index
            }
            index = end
        }
        let hex = groups.map { String($0, radix: 16) }
        guard bestStart >= 0 else { return hex.joined(separator: ":") }
        let head = hex[..<bestStart].joined(separator: ":")
        let tail = hex[(bestStart + bestLength)...].joined(separator: ":")
        return head + "::" + tail
    }
}
