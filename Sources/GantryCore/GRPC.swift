/// What gantry reads and writes of gRPC (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md)
/// as a proxy: which requests are gRPC calls, their deadline (`grpc-timeout`), the status codes
/// gantry answers with when it ends a call itself, and the health service's two small messages.
/// Written here: the proxy needs these few rules, not a gRPC stack.
public enum GRPC {
    /// The status codes gantry answers with (the numbering is gRPC's).
    public enum Status: Int, Sendable {
        case ok = 0
        case cancelled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case permissionDenied = 7
        case resourceExhausted = 8
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
        case unauthenticated = 16

        /// The status for gantry's own HTTP answer, as gRPC maps HTTP statuses to codes, with
        /// a rate limit's 429 as RESOURCE_EXHAUSTED (Envoy's choice for local rate limits) and a
        /// gateway timeout as DEADLINE_EXCEEDED.
        public init(httpStatus: Int) {
            switch httpStatus {
            case 400: self = .internal
            case 401: self = .unauthenticated
            case 403: self = .permissionDenied
            case 404: self = .unimplemented
            case 408, 504: self = .deadlineExceeded
            case 413, 429, 431: self = .resourceExhausted
            case 502, 503: self = .unavailable
            default: self = httpStatus < 500 ? .internal : .unavailable
            }
        }
    }

    /// Whether a request with this `Content-Type` is a gRPC call (`application/grpc`,
    /// `application/grpc+proto`, …; gRPC-Web's are not: they speak HTTP/1.1 framing).
    public static func isCall(contentType: some StringProtocol) -> Bool {
        let lowered = contentType.lowercased()
        guard lowered.hasPrefix("application/grpc") else { return false }
        let rest = lowered.dropFirst("application/grpc".count)
        return rest.isEmpty || rest.first == "+" || rest.first == ";"
    }

    /// A `grpc-timeout` value in nanoseconds: at most 8 digits and a unit (H, M, S, m, u, n);
    /// nil when malformed.
    public static func timeoutNanoseconds(_ text: some StringProtocol) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 2, bytes.count <= 9, let unit = bytes.last else { return nil }
        var value: Int64 = 0
        for byte in bytes.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        let scale: Int64
        switch unit {
        case UInt8(ascii: "H"): scale = 3_600_000_000_000
        case UInt8(ascii: "M"): scale = 60_000_000_000
        case UInt8(ascii: "S"): scale = 1_000_000_000
        case UInt8(ascii: "m"): scale = 1_000_000
        case UInt8(ascii: "u"): scale = 1_000
        case UInt8(ascii: "n"): scale = 1
        default: return nil
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? Int64.max : product
    }

    /// `grpc-message` as the protocol asks: percent-encoded outside printable ASCII and `%`.
    public static func encodeMessage(_ message: String) -> String {
        var out = ""
        for byte in message.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    // MARK: grpc.health.v1

    /// The health service's method path.
    public static let healthCheckPath = "/grpc.health.v1.Health/Check"

    /// A `HealthCheckRequest { string service = 1; }` as one length-prefixed gRPC message.
    /// (Protocol Buffers' wire format by hand: one field does not warrant generated code.)
    public static func healthCheckRequest(service: String) -> [UInt8] {
        var message: [UInt8] = []
        if !service.isEmpty {
            message.append(0x0A)  // field 1, length-delimited
            appendVarint(UInt64(service.utf8.count), to: &message)
            message.append(contentsOf: service.utf8)
        }
        return frame(message)
    }

    /// `HealthCheckResponse.status` (1 is SERVING) from the response body's first message;
    /// nil when the body is not one.
    public static func servingStatus(inResponseBody body: [UInt8]) -> Int? {
        guard body.count >= 5, body[0] == 0 else { return nil }
        let length = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
        guard body.count >= 5 + length else { return nil }
        var index = 5
        let end = 5 + length
        var status = 0  // proto3: an absent field is its zero, UNKNOWN
        while index < end {
            guard let key = readVarint(body, &index, end: end) else { return nil }
            switch key & 7 {
            case 0:
                guard let value = readVarint(body, &index, end: end) else { return nil }
                if key >> 3 == 1 { status = Int(truncatingIfNeeded: value) }
            case 2:
                guard let length = readVarint(body, &index, end: end), length <= UInt64(end - index) else { return nil }
                index += Int(length)
            case 1: index += 8
            case 5: index += 4
            default: return nil
            }
        }
        return index == end ? status : nil
    }

    public static let serving = 1

    /// One message with gRPC's prefix: uncompressed, then its length as 4 bytes big-endian.
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + message
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    private static func readVarint(_ bytes: [UInt8], _ index: inout Int, end: Int) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < end, shift < 64 {
            let byte = bytes[index]
            index += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
