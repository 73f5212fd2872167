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

    /// A random version-4 UUID in its canonical lowercase form.
    @inlinable
    public static func generate<R: RandomNumberGenerator>(using random: inout R) -> String {
        RequestIdentifier.random(using: &random).description
    }
}
