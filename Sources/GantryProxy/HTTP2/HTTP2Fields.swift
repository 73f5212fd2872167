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

    /// The fields of a header block, without its pseudo-fields.
    static func fields(of block: HPACKHeaders, reservingExtra extra: Int = 0) -> HTTPHeaders {
        var fields = HTTPHeaders()
        fields.reserveCapacity(block.count + extra)
        for (name, value, _) in block where name.first != ":" { fields.add(name: name, value: value) }
        return fields
    }
}
