import GantryCore
import NIOHTTP1

/// What the proxy needs to know about a header block, learned in one pass without allocating
/// in the common case. Asking `HTTPHeaders` each question separately costs a scan per
/// question, and `headers[canonicalForm:]` builds arrays of split values on top of that; on the
/// proxy's hot path this was a measurable share of the user-space time per request.
struct HeaderFacts {
    var hostCount = 0
    var host: String?
    var contentLengthCount = 0
    var contentLength: String?
    var contentLengthsDiffer = false
    /// Every `Transfer-Encoding` value, in order; rare, so collected as is.
    var transferEncodings: [String] = []
    var hasExpect = false
    var expectsContinue = false
    /// A hop-by-hop field or a field that `Connection` nominates is present.
    var hasHopByHop = false
    /// Lowercased names `Connection` nominates beyond the standard hop-by-hop fields.
    var nominated: [String] = []
    var forwardedForCount = 0
    var hasForwardedProto = false
    var hasForwardedHost = false
    var requestID: String?
    /// The first `traceparent`, and whether a `tracestate` came with it.
    var traceparent: String?
    var hasTracestate = false
    /// The first `X-Gantry-Trace` is `1`: the client asks for `Server-Timing`.
    var asksForTiming = false
    private var sawGantryTrace = false

    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            switch name.utf8.count {
            case 4 where name.isASCII(caseInsensitiveEqualTo: "host"):
                hostCount += 1
                if host == nil { host = value }
            case 14 where name.isASCII(caseInsensitiveEqualTo: "content-length"):
                contentLengthCount += 1
                if let first = contentLength { contentLengthsDiffer = contentLengthsDiffer || first != value } else { contentLength = value }
            case 14 where name.isASCII(caseInsensitiveEqualTo: "x-gantry-trace"):
                if !sawGantryTrace { asksForTiming = value == "1" }
                sawGantryTrace = true
            case 6 where name.isASCII(caseInsensitiveEqualTo: "expect"):
                hasExpect = true
                expectsContinue = expectsContinue || value.isASCII(caseInsensitiveEqualTo: "100-continue")
            case 10 where name.isASCII(caseInsensitiveEqualTo: "connection"):
                hasHopByHop = true
                collectNominated(value)
            case 15 where name.isASCII(caseInsensitiveEqualTo: "x-forwarded-for"):
                forwardedForCount += 1
            case 17 where name.isASCII(caseInsensitiveEqualTo: "x-forwarded-proto"):
                hasForwardedProto = true
            case 16 where name.isASCII(caseInsensitiveEqualTo: "x-forwarded-host"):
                hasForwardedHost = true
            case 12 where name.isASCII(caseInsensitiveEqualTo: "x-request-id"):
                if requestID == nil { requestID = value }
            case 17 where name.isASCII(caseInsensitiveEqualTo: "transfer-encoding"):
                hasHopByHop = true
                transferEncodings.append(value)
            case 11 where name.isASCII(caseInsensitiveEqualTo: "traceparent"):
                if traceparent == nil { traceparent = value }
            case 10 where name.isASCII(caseInsensitiveEqualTo: "tracestate"):
                hasTracestate = true
            case 2, 7, 10, 16:
                var bytes = name
                if bytes.withUTF8({ HTTP1Syntax.isOtherHopByHop(UnsafeRawBufferPointer($0)) }) { hasHopByHop = true }
            default:
                break
            }
        }
    }

    /// Records the tokens of a `Connection` value that name other fields. `keep-alive` and
    /// `close`, nearly always the only tokens, are recognised without allocating.
    private mutating func collectNominated(_ value: String) {
        if value.isASCII(caseInsensitiveEqualTo: "keep-alive") || value.isASCII(caseInsensitiveEqualTo: "close") { return }
        for name in HopByHop.nominated(by: CollectionOfOne(value))
        where name != "close" && !HopByHop.fields.contains(name) && !Self.isProtected(name) {
            nominated.append(name)
        }
    }

    /// Fields a client may not remove by naming them in `Connection`: the proxy's own
    /// forwarding facts and the message's framing and routing.
    private static func isProtected(_ name: String) -> Bool {
        switch name {
        case "host", "content-length", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host": return true
        default: return false
        }
    }

    /// Whether the field `name` goes no further than this hop.
    func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2, 7, 10, 16, 17:
            if HopByHop.fields.contains(name.lowercased()) { return true }
        default:
            break
        }
        return !nominated.isEmpty && nominated.contains(name.lowercased())
    }
}

extension String {
    /// ASCII case-insensitive equality with a lowercase literal, without allocating.
    func isASCII(caseInsensitiveEqualTo lowercase: StaticString) -> Bool {
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            var index = 0
            for byte in utf8 {
                let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
                if folded != expected[index] { return false }
                index += 1
            }
            return true
        }
    }
}
