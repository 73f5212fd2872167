/// Request IDs: the client's `X-Request-ID` when it is sane, a fresh UUID-shaped one otherwise.
public enum RequestID {
    /// A client-supplied ID is kept when it is 1–128 bytes of letters, digits and `-_.:+/=@`:
    /// enough for UUIDs, ULIDs, base64 and vendor formats, and safe to put in a log line or a
    /// header without escaping.
    public static func isSane(_ value: some StringProtocol) -> Bool {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= 128 else { return false }
        return bytes.allSatisfy { byte in
            isAlphanumeric(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "+")
                || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "@")
        }
    }

    /// A random version-4 UUID in its canonical lowercase form. Inlinable, so that the data
    /// plane's call is specialised for its generator instead of calling through the protocol.
    @inlinable
    public static func generate<R: RandomNumberGenerator>(using random: inout R) -> String {
        let high = ((random.next() as UInt64) & ~0xF000) | 0x4000  // version 4
        let low = ((random.next() as UInt64) & ~(0xC << 60)) | (0x8 << 60)  // RFC 4122 variant
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var digit = 0  // of the 32 hex digits: `high`'s 16, then `low`'s
            for position in 0..<36 {
                if position == 8 || position == 13 || position == 18 || position == 23 {
                    buffer[position] = UInt8(ascii: "-")
                    continue
                }
                let nibble = UInt8(truncatingIfNeeded: ((digit < 16 ? high : low) >> UInt64((15 - (digit & 15)) * 4)) & 0xF)
                buffer[position] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
                digit += 1
            }
            return 36
        }
    }
}
