import Foundation

/// base64url without padding (RFC 7515 §2, RFC 4648 §5), as JWTs and JWKs use it.
///
/// Decoded strictly, by hand: Foundation's decoder takes `+`, `/` and non-zero bits after the
/// last byte, so a token would have several spellings that all verify, and a cache or a
/// deny-list keyed by the token's text could be walked around (RFC 8725 §3.11 asks for one
/// spelling).
public enum Base64URL {
    /// The bytes `text` spells, or nil unless it is canonical base64url: only `A–Z a–z 0–9 - _`,
    /// no padding, no length that leaves a single character over, and zero bits past the last
    /// byte.
    public static func decode(_ text: some StringProtocol) -> Data? {
        let utf8 = Substring(text).utf8
        return utf8.withContiguousStorageIfAvailable(decode) ?? {
            var copy = String(text)
            return copy.withUTF8 { decode($0) }
        }()
    }

    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> Data? {
        guard bytes.count % 4 != 1 else { return nil }
        var out = Data(capacity: bytes.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in bytes {
            guard let value = sextet(byte) else { return nil }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                accumulator &= (1 << UInt32(bits)) - 1
            }
        }
        // The 2 or 4 bits left over must be zero: otherwise another text spells the same bytes.
        guard accumulator == 0 else { return nil }
        return out
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): 62
        case UInt8(ascii: "_"): 63
        default: nil
        }
    }

    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
