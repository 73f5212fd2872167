/// A request's ID as the proxy carries it: a random UUID gantry made, kept as its 128 bits, or
/// an ID as text, such as the client's own when ``isSane(_:)`` lets the proxy keep it.
///
/// The UUID is spelled out only where it is written, into a head or a log line. Made as a
/// `String`, it was an allocation on every request, and a retain and a release each time the
/// connection, the exchange or one of the two heads took hold of it.
public enum RequestIdentifier: Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    case uuid(high: UInt64, low: UInt64)
    case client(String)

    /// Bytes in a UUID's canonical form.
    public static let uuidLength = 36

    /// A random version-4 UUID. Inlinable, so that the data plane's call is specialised for its
    /// generator instead of calling through the protocol.
    @inlinable
    public static func random<R: RandomNumberGenerator>(using random: inout R) -> RequestIdentifier {
        let high = ((random.next() as UInt64) & ~0xF000) | 0x4000  // version 4
        let low = ((random.next() as UInt64) & ~(0xC << 60)) | (0x8 << 60)  // RFC 4122 variant
        return .uuid(high: high, low: low)
    }

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

    public init(stringLiteral value: String) {
        self = .client(value)
    }

    /// How many bytes the ID's text takes.
    public var utf8Count: Int {
        switch self {
        case .uuid: Self.uuidLength
        case .client(let text): text.utf8.count
        }
    }

    /// Calls `body` with the ID's text as UTF-8; a UUID's is made on the stack.
    @inlinable
    public func withUTF8<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        switch self {
        case .uuid(let high, let low):
            return try withUnsafeTemporaryAllocation(byteCount: Self.uuidLength, alignment: 1) { buffer in
                Self.spell(high: high, low: low, into: buffer)
                return try body(UnsafeRawBufferPointer(buffer))
            }
        case .client(var text):
            return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
        }
    }

    /// Writes the ID's text at the start of `out`, which has room for ``utf8Count`` bytes; a
    /// UUID is spelled there directly. Returns the count.
    @inlinable
    public func write(into out: UnsafeMutableRawBufferPointer) -> Int {
        switch self {
        case .uuid(let high, let low):
            Self.spell(high: high, low: low, into: out)
            return Self.uuidLength
        case .client(var text):
            return text.withUTF8 { text in
                UnsafeMutableRawBufferPointer(rebasing: out[..<text.count]).copyMemory(from: UnsafeRawBufferPointer(text))
                return text.count
            }
        }
    }

    public var description: String {
        switch self {
        case .uuid(let high, let low):
            String(unsafeUninitializedCapacity: Self.uuidLength) { buffer in
                Self.spell(high: high, low: low, into: UnsafeMutableRawBufferPointer(buffer))
                return Self.uuidLength
            }
        case .client(let text):
            text
        }
    }

    /// The canonical lowercase form, `8-4-4-4-12` hex digits: `high`'s 16, then `low`'s, eight
    /// digits at a time (``HexDigits``): it runs twice per request.
    @usableFromInline
    static func spell(high: UInt64, low: UInt64, into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= uuidLength)
        let second = HexDigits.eight(UInt32(truncatingIfNeeded: high))
        let third = HexDigits.eight(UInt32(truncatingIfNeeded: low >> 32))
        buffer.storeBytes(of: HexDigits.eight(UInt32(truncatingIfNeeded: high >> 32)), toByteOffset: 0, as: UInt64.self)
        // The middle groups are four digits each: the halves of an eight-digit word.
        buffer.storeBytes(of: UInt32(truncatingIfNeeded: second), toByteOffset: 9, as: UInt32.self)
        buffer.storeBytes(of: UInt32(truncatingIfNeeded: second >> 32), toByteOffset: 14, as: UInt32.self)
        buffer.storeBytes(of: UInt32(truncatingIfNeeded: third), toByteOffset: 19, as: UInt32.self)
        buffer.storeBytes(of: UInt32(truncatingIfNeeded: third >> 32), toByteOffset: 24, as: UInt32.self)
        buffer.storeBytes(of: HexDigits.eight(UInt32(truncatingIfNeeded: low)), toByteOffset: 28, as: UInt64.self)
        buffer[8] = UInt8(ascii: "-")
        buffer[13] = UInt8(ascii: "-")
        buffer[18] = UInt8(ascii: "-")
        buffer[23] = UInt8(ascii: "-")
    }
}
