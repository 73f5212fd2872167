import Foundation
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
    /// The `Upgrade` field's first protocol, lowercased without a version (`websocket`); an
    /// upgrade is asked for only when `Connection` names it too.
    var upgradeProtocol: String?
    private var sawUpgrade = false
    private var connectionNamesUpgrade = false
    private var sawGantryTrace = false

    init() {}

    /// The facts of fields that came as strings (an HTTP/2 stream's, through NIO's codec).
    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            var name = name
            var value = value
            name.withUTF8 { name in value.withUTF8 { value in learn(name: UnsafeRawBufferPointer(name), value: UnsafeRawBufferPointer(value)) } }
        }
    }

    /// Learns what one field says. The HTTP/1.1 parser calls this with each field's bytes as it
    /// reads them; strings are made only of the values kept here, which are few and short.
    mutating func learn(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        switch name.count {
        case 4 where Self.equal(name, "host"):
            hostCount += 1
            if host == nil { host = String(decoding: value, as: UTF8.self) }
        case 14 where Self.equal(name, "content-length"):
            contentLengthCount += 1
            if let first = contentLength {
                contentLengthsDiffer = contentLengthsDiffer || !first.utf8.elementsEqual(value)
            } else {
                contentLength = String(decoding: value, as: UTF8.self)
            }
        case 14 where Self.equal(name, "x-gantry-trace"):
            if !sawGantryTrace { asksForTiming = value.count == 1 && value[0] == UInt8(ascii: "1") }
            sawGantryTrace = true
        case 6 where Self.equal(name, "expect"):
            hasExpect = true
            expectsContinue = expectsContinue || Self.equal(value, "100-continue")
        case 10 where Self.equal(name, "connection"):
            hasHopByHop = true
            collectNominated(value)
        case 15 where Self.equal(name, "x-forwarded-for"):
            forwardedForCount += 1
        case 17 where Self.equal(name, "x-forwarded-proto"):
            hasForwardedProto = true
        case 16 where Self.equal(name, "x-forwarded-host"):
            hasForwardedHost = true
        case 12 where Self.equal(name, "x-request-id"):
            if requestID == nil { requestID = String(decoding: value, as: UTF8.self) }
        case 17 where Self.equal(name, "transfer-encoding"):
            hasHopByHop = true
            transferEncodings.append(String(decoding: value, as: UTF8.self))
        case 11 where Self.equal(name, "traceparent"):
            if traceparent == nil { traceparent = String(decoding: value, as: UTF8.self) }
        case 10 where Self.equal(name, "tracestate"):
            hasTracestate = true
        case 7 where Self.equal(name, "upgrade"):
            hasHopByHop = true
            if !sawUpgrade {
                sawUpgrade = true
                let field = String(decoding: value, as: UTF8.self)
                let first = field.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                upgradeProtocol = first.split(separator: "/").first.map { $0.lowercased() }
            }
        case 2, 7, 10, 16:
            if HTTP1Syntax.isOtherHopByHop(name) { hasHopByHop = true }
        default:
            break
        }
    }

    /// Records the tokens of a `Connection` value that name other fields. `keep-alive` and
    /// `close`, nearly always the only tokens, are recognised without allocating.
    private mutating func collectNominated(_ value: UnsafeRawBufferPointer) {
        if Self.equal(value, "keep-alive") || Self.equal(value, "close") { return }
        for name in HopByHop.nominated(by: CollectionOfOne(String(decoding: value, as: UTF8.self))) {
            if name == "upgrade" { connectionNamesUpgrade = true }
            if name != "close" && !HopByHop.fields.contains(name) && !Self.isProtected(name) { nominated.append(name) }
        }
    }

    /// The protocol the client asks to switch to (RFC 9110 §7.8): `Upgrade` with `Connection:
    /// upgrade`.
    var requestedUpgrade: String? { connectionNamesUpgrade ? upgradeProtocol : nil }

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
        var name = name
        return name.withUTF8 { isHopByHop(UnsafeRawBufferPointer($0)) }
    }

    /// Whether the field named by these bytes goes no further than this hop.
    func isHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 10 where Self.equal(name, "connection"): return true
        case 17 where Self.equal(name, "transfer-encoding"): return true
        case 2, 7, 10, 16: if HTTP1Syntax.isOtherHopByHop(name) { return true }
        default: break
        }
        return !nominated.isEmpty && nominated.contains { Self.equal(name, $0) }
    }

    /// ASCII case-insensitive equality with a lowercase name. Strict, unlike
    /// ``HTTP1Syntax/equalsLowercase(_:_:)``: an HTTP/2 client's values come here unchecked.
    static func equal(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        lowercase.withUTF8Buffer { equal(bytes, UnsafeRawBufferPointer($0)) }
    }

    static func equal(_ bytes: UnsafeRawBufferPointer, _ lowercase: String) -> Bool {
        var lowercase = lowercase
        return lowercase.withUTF8 { equal(bytes, UnsafeRawBufferPointer($0)) }
    }

    private static func equal(_ bytes: UnsafeRawBufferPointer, _ expected: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == expected.count else { return false }
        for index in 0..<bytes.count {
            let byte = bytes[index]
            let folded = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            if folded != expected[index] { return false }
        }
        return true
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
