/// An IPv4 address, the RDATA of an A record (RFC 1035 §3.4.1).
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible {
    /// The address in network order: `192.0.2.1` is `0xC000_0201`.
    public let value: UInt32

    public init(value: UInt32) {
        self.value = value
    }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Exactly four bytes, network order.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 4 else { return nil }
        value = bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Strict dotted-decimal: four decimal parts 0–255. Leading zeros are rejected because
    /// `inet_aton` reads them as octal, so `010.0.0.1` would mean different things to different
    /// tools (RFC 6943 §3.1.1); shorthand forms like `127.1` are rejected for the same reason.
    public init?(_ text: some StringProtocol) {
        let parts = text.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard let octet = Self.octet(part) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        self.value = value
    }

    private static func octet(_ digits: some Collection<UInt8>) -> UInt8? {
        guard (1...3).contains(digits.count) else { return nil }
        guard digits.count == 1 || digits.first != UInt8(ascii: "0") else { return nil }
        var result = 0
        for digit in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            result = result * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return result <= 255 ? UInt8(result) : nil
    }

    public var bytes: [UInt8] {
        [UInt8(value >> 24), UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    public var description: String {
        bytes.map(String.init).joined(separator: ".")
    }
}
