/// W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/): the trace a request
/// belongs to and the span that sent it. Gantry is one hop of the trace: it keeps the client's
/// trace ID, sends its own span ID upstream, and starts a trace when the client sent none (or a
/// malformed one, which the spec says to treat as none).
public struct TraceContext: Sendable, Hashable {
    public let traceID: (high: UInt64, low: UInt64)
    public let spanID: UInt64
    public let flags: UInt8

    public static func == (a: TraceContext, b: TraceContext) -> Bool {
        a.traceID == b.traceID && a.spanID == b.spanID && a.flags == b.flags
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(traceID.high)
        hasher.combine(traceID.low)
        hasher.combine(spanID)
        hasher.combine(flags)
    }

    public init(traceID: (high: UInt64, low: UInt64), spanID: UInt64, flags: UInt8) {
        self.traceID = traceID
        self.spanID = spanID
        self.flags = flags
    }

    /// The sampled flag: the caller records this trace (and asks the hops after it to).
    public var sampled: Bool { flags & 1 == 1 }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`. Versions above 00 are read by their first four
    /// fields, as §4.3 asks; version ff, all-zero IDs and uppercase hex are invalid.
    public init?(header: some StringProtocol) {
        let bytes = Array(header.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-"),
            let version = Self.hex(bytes[0..<2]), version != 0xFF, version != 0 || bytes.count == 55,
            bytes.count == 55 || bytes[55] == UInt8(ascii: "-"),
            let high = Self.hex(bytes[3..<19]), let low = Self.hex(bytes[19..<35]), let span = Self.hex(bytes[36..<52]),
            let flags = Self.hex(bytes[53..<55]), high != 0 || low != 0, span != 0
        else { return nil }
        self.init(traceID: (high, low), spanID: span, flags: UInt8(flags))
    }

    /// A new trace, for a request that came without one.
    public static func start(using random: inout some RandomNumberGenerator, sampled: Bool) -> TraceContext {
        var high: UInt64 = 0
        var low: UInt64 = 0
        while high == 0 && low == 0 { (high, low) = (random.next(), random.next()) }
        return TraceContext(traceID: (high, low), spanID: Self.span(&random), flags: sampled ? 1 : 0)
    }

    /// The same trace, with gantry's span as the parent of what goes upstream. `sampled` can only
    /// turn the flag on (a request that asked for tracing), never off.
    public func child(using random: inout some RandomNumberGenerator, sampled: Bool = false) -> TraceContext {
        TraceContext(traceID: traceID, spanID: Self.span(&random), flags: sampled ? flags | 1 : flags)
    }

    /// The length of a `traceparent` value (version 00).
    public static let headerLength = 55

    public var header: String {
        String(unsafeUninitializedCapacity: Self.headerLength) { buffer in
            writeHeader(into: UnsafeMutableRawBufferPointer(buffer))
            return Self.headerLength
        }
    }

    /// Writes the `traceparent` value into the first ``headerLength`` bytes of `out`: one is
    /// made for every proxied request, and the proxy writes it straight into the upstream head.
    public func writeHeader(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.headerLength)
        out[0] = UInt8(ascii: "0")
        out[1] = UInt8(ascii: "0")
        out[2] = UInt8(ascii: "-")
        HexDigits.write(traceID.high, into: out, at: 3)
        HexDigits.write(traceID.low, into: out, at: 19)
        out[35] = UInt8(ascii: "-")
        HexDigits.write(spanID, into: out, at: 36)
        out[52] = UInt8(ascii: "-")
        // The flags' two digits: the last two of their eight.
        let flagDigits = HexDigits.eight(UInt32(flags))
        out.storeBytes(of: UInt16(truncatingIfNeeded: flagDigits >> 48), toByteOffset: 53, as: UInt16.self)
    }

    public var traceIDHex: String { Self.hex(traceID.high, digits: 16) + Self.hex(traceID.low, digits: 16) }

    private static func span(_ random: inout some RandomNumberGenerator) -> UInt64 {
        var value: UInt64 = 0
        while value == 0 { value = random.next() }
        return value
    }

    private static func hex(_ bytes: ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        for byte in bytes {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    private static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
