import GantryCore
import NIOHPACK
import NIOHTTP1

/// Between HTTP/2's header blocks and the HTTP/1.1 form the exchange works on, both ways and
/// for both ends (the client's streams, ``HTTP2Stream``; the upstreams', ``HTTP2UpstreamStream``).
enum HTTP2Fields {
    /// A header block: the pseudo-fields, then `headers` with names lowercased and the
    /// connection-specific fields HTTP/2 forbids left out (RFC 9113 §8.2.2), `Host` included
    /// (it is `:authority`).
    static func block(pseudo: KeyValuePairs<String, String>, _ headers: HTTPHeaders) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + pseudo.count + 1)
        for (name, value) in pseudo { block.add(name: name, value: value) }
        for (name, value) in headers {
            // Names from HTTP/2 clients and most servers are lowercase already: no new string.
            let lowered = name.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) ? name.lowercased() : name
            if isConnectionSpecific(lowered) { continue }
            block.add(name: lowered, value: value, indexing: indexing(lowered))
        }
        return block
    }

    /// Whether HPACK may keep a field in its dynamic table (RFC 7541 §6.2): not one whose value
    /// is new on every message (request IDs, trace context, dates, lengths), which would only
    /// push out the fields that do repeat and lengthen every lookup; never a credential
    /// (§7.1.3), so that no intermediary indexes it either.
    static func indexing(_ name: String) -> HPACKIndexing {
        switch name {
        case "x-request-id", "traceparent", "tracestate", "date", "content-length", "last-modified", "etag", "grpc-timeout", "server-timing":
            .nonIndexable
        case "authorization", "proxy-authorization", "cookie", "set-cookie":
            .neverIndexed
        default:
            .indexable
        }
    }

    /// ``HopByHop/fields``, `Host` and `HTTP2-Settings`, for a lowercased name: compared by
    /// length first, as hashing every name for a set lookup cost more.
    static func isConnectionSpecific(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2: name == "te"
        case 4: name == "host"
        case 7: name == "upgrade" || name == "trailer"
        case 10: name == "connection" || name == "keep-alive"
        case 14: name == "http2-settings"
        case 16: name == "proxy-connection"
        case 17: name == "transfer-encoding"
        default: false
        }
    }

    /// Whether an endpoint's response block (or its trailers) keeps RFC 9113's rules: field
    /// names are lowercase tokens (§8.2), values hold no NUL, CR or LF (§8.2.1), no
    /// connection-specific field (§8.2.2; `te` only as `trailers`), and `:status` is the one
    /// pseudo-field, once and before the others (§8.3), never in trailers. The same rules as
    /// NIO's header block validation, which upstream connections run without: the requests
    /// gantry sends there are built from checked parts, and this loop over the bytes costs
    /// less than NIO's over each field's string.
    static func isValidResponse(_ block: HPACKHeaders, trailers: Bool) -> Bool {
        var status = false
        var regular = false
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                guard !trailers, !regular, !status, name == ":status" else { return false }
                status = true
            } else {
                regular = true
                guard isLowercaseToken(name), !isForbidden(name, value: value) else { return false }
            }
            guard !value.utf8.contains(where: { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) else { return false }
        }
        return trailers || status
    }

    /// The fields RFC 9113 §8.2.2 forbids in a message, as NIO's check has them (fewer than
    /// ``isConnectionSpecific(_:)``, which gantry leaves out of what it sends: `Trailer` and
    /// `Host` may come).
    private static func isForbidden(_ name: String, value: String) -> Bool {
        switch name {
        case "connection", "transfer-encoding", "proxy-connection", "keep-alive", "upgrade": true
        case "te": value != "trailers"
        default: false
        }
    }

    private static func isLowercaseToken(_ name: String) -> Bool {
        !name.isEmpty
            && name.utf8.allSatisfy { HTTP1Syntax.isTokenByte($0) && !($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) }
    }

    /// The fields of a header block, without its pseudo-fields.
    static func fields(of block: HPACKHeaders, reservingExtra extra: Int = 0) -> HTTPHeaders {
        var fields = HTTPHeaders()
        fields.reserveCapacity(block.count + extra)
        for (name, value, _) in block where name.first != ":" { fields.add(name: name, value: value) }
        return fields
    }
}
