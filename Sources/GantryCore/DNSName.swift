/// A domain name (RFC 1035 §3.1): a sequence of labels, compared case-insensitively.
///
/// The name is stored once, in uncompressed wire form without the terminating root byte
/// (`length, bytes…, length, bytes…`). One allocation per name keeps decoding a hostile packet
/// cheap: a 64 KiB message full of compression pointers expands to at most a few MB, not to one
/// heap object per label.
///
/// Equality and hashing fold ASCII case only (RFC 4343 §3); the original spelling is kept so
/// answers can echo what the client or the zone author wrote.
public struct DNSName: Hashable, Sendable, CustomStringConvertible {
    public static let maxLabelLength = 63
    /// The limit on the wire form including the root byte (RFC 1035 §2.3.4).
    public static let maxWireLength = 255

    /// Length-prefixed labels, leftmost first, no trailing zero byte.
    package let wire: [UInt8]

    public static let root = DNSName(uncheckedWire: [])

    package init(uncheckedWire wire: [UInt8]) {
        self.wire = wire
    }

    /// Builds a name from raw labels, leftmost first.
    public init(labels: [[UInt8]]) throws(DNSNameError) {
        var wire: [UInt8] = []
        for label in labels {
            guard !label.isEmpty else { throw .emptyLabel }
            guard label.count <= Self.maxLabelLength else { throw .labelTooLong(label.count) }
            wire.append(UInt8(label.count))
            wire.append(contentsOf: label)
            guard wire.count + 1 <= Self.maxWireLength else { throw .nameTooLong }
        }
        self.wire = wire
    }

    /// Parses presentation format: labels separated by dots, an optional trailing dot, `""` or
    /// `"."` for the root. `\.` and `\\` escape a literal character and `\DDD` a decimal byte
    /// (RFC 1035 §5.1), so every name this type can print can be read back.
    public init(_ text: String) throws(DNSNameError) {
        let bytes = Array(text.utf8)
        if bytes.isEmpty || bytes == [UInt8(ascii: ".")] {
            self = .root
            return
        }
        var labels: [[UInt8]] = []
        var current: [UInt8] = []
        var index = 0
        var lastWasDot = false
        while index < bytes.count {
            let byte = bytes[index]
            lastWasDot = false
            if byte == UInt8(ascii: ".") {
                guard !current.isEmpty else { throw .emptyLabel }
                labels.append(current)
                current = []
                lastWasDot = true
                index += 1
            } else if byte == UInt8(ascii: "\\") {
                let (value, consumed) = try Self.unescape(bytes, at: index)
                current.append(value)
                index += consumed
            } else {
                current.append(byte)
                index += 1
            }
            guard current.count <= Self.maxLabelLength else { throw .labelTooLong(current.count) }
        }
        if !current.isEmpty {
            labels.append(current)
        } else if !lastWasDot {
            throw .emptyLabel
        }
        try self.init(labels: labels)
    }

    private static func unescape(_ bytes: [UInt8], at index: Int) throws(DNSNameError) -> (UInt8, Int) {
        guard index + 1 < bytes.count else { throw .invalidEscape }
        let next = bytes[index + 1]
        guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(next) else { return (next, 2) }
        guard index + 3 < bytes.count else { throw .invalidEscape }
        var value = 0
        for digit in bytes[(index + 1)...(index + 3)] {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { throw .invalidEscape }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        guard value <= 255 else { throw .invalidEscape }
        return (UInt8(value), 4)
    }

    /// The labels as written, leftmost first; empty for the root.
    public var labels: [[UInt8]] {
        labelOffsets.map { offset in Array(wire[(offset + 1)...(offset + Int(wire[offset]))]) }
    }

    public var labelCount: Int { labelOffsets.count }

    /// Offsets into `wire` where each label's length byte sits.
    package var labelOffsets: [Int] {
        var offsets: [Int] = []
        var offset = 0
        while offset < wire.count {
            offsets.append(offset)
            offset += 1 + Int(wire[offset])
        }
        return offsets
    }

    /// Bytes this name takes uncompressed on the wire, including the root byte.
    public var wireLength: Int { wire.count + 1 }

    public var isRoot: Bool { wire.isEmpty }

    /// True for `*.<anything>`: an asterisk as the whole leftmost label (RFC 4592 §2.1.1).
    public var isWildcard: Bool { wire.count >= 2 && wire[0] == 1 && wire[1] == UInt8(ascii: "*") }

    /// The name with its leftmost label removed; nil for the root.
    public var parent: DNSName? {
        guard let first = wire.first else { return nil }
        return DNSName(uncheckedWire: Array(wire[(1 + Int(first))...]))
    }

    /// The name with `label` added on the left, e.g. `*` + `example.com` → `*.example.com`.
    public func prepending(_ label: String) throws(DNSNameError) -> DNSName {
        let bytes = Array(label.utf8)
        guard !bytes.isEmpty else { throw .emptyLabel }
        guard bytes.count <= Self.maxLabelLength else { throw .labelTooLong(bytes.count) }
        guard wire.count + 1 + bytes.count + 1 <= Self.maxWireLength else { throw .nameTooLong }
        return DNSName(uncheckedWire: [UInt8(bytes.count)] + bytes + wire)
    }

    /// The suffix that starts at wire offset `offset`, which must be a label boundary.
    package func suffix(fromWireOffset offset: Int) -> DNSName {
        DNSName(uncheckedWire: Array(wire[offset...]))
    }

    /// True when `self` equals `other` or lies below it. Label boundaries matter:
    /// `badexample.com` is not below `example.com`.
    public func isSubdomain(of other: DNSName) -> Bool {
        let start = wire.count - other.wire.count
        guard start >= 0 else { return false }
        guard start == 0 || start == wire.count || labelOffsets.contains(start) else { return false }
        for index in 0..<other.wire.count where Self.fold(wire[start + index]) != Self.fold(other.wire[index]) {
            return false
        }
        return true
    }

    /// ASCII-only case folding (RFC 4343 §3). Length bytes are ≤ 63, below "A", so folding the
    /// whole wire form is safe.
    @inline(__always)
    static func fold(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }

    public static func == (lhs: DNSName, rhs: DNSName) -> Bool {
        guard lhs.wire.count == rhs.wire.count else { return false }
        for index in lhs.wire.indices where fold(lhs.wire[index]) != fold(rhs.wire[index]) {
            return false
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(wire.count)
        for byte in wire { hasher.combine(Self.fold(byte)) }
    }

    /// Fully qualified presentation form with a trailing dot; `.` for the root. Dots and
    /// backslashes inside labels are escaped, other non-printable bytes become `\DDD`.
    public var description: String {
        guard !isRoot else { return "." }
        var text = ""
        for label in labels {
            for byte in label {
                switch byte {
                case UInt8(ascii: "."), UInt8(ascii: "\\"):
                    text += "\\" + String(UnicodeScalar(byte))
                case 0x21...0x7E:
                    text.unicodeScalars.append(UnicodeScalar(byte))
                default:
                    let digits = String(byte)
                    text += "\\" + String(repeating: "0", count: 3 - digits.count) + digits
                }
            }
            text += "."
        }
        return text
    }
}

public enum DNSNameError: Error, Hashable, Sendable {
    case emptyLabel
    case labelTooLong(Int)
    case nameTooLong
    case invalidEscape
}
