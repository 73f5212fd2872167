import GantryCore
import NIOHTTP1

/// The header changes a reverse proxy makes on the way upstream. On the way back,
/// ``HTTPResponseParser`` leaves out the response's hop-by-hop fields as it reads them.
enum ForwardingHeaders {
    /// Upstream request: drops hop-by-hop fields (RFC 9110 §7.6.1, and every field `Connection`
    /// names) and `Expect` (gantry answers `100-continue` itself), sets `X-Forwarded-For`
    /// (appending the client), `-Proto`, `-Host` and `X-Request-ID`, and re-declares chunked
    /// framing, which the removal of `Transfer-Encoding` took away.
    static func prepare(
        _ headers: inout HTTPHeaders, facts: HeaderFacts, client: String, scheme: String, host: String, requestID: String,
        keptClientID: Bool, chunked: Bool
    ) {
        let replacesHost = !host.isEmpty
        var forwardedFor = client
        // The block is built anew, once, with room for gantry's fields: adding them to the
        // client's block would copy it anyway, as the client's head still holds it.
        var fields: [(String, String)] = []
        fields.reserveCapacity(headers.count + 6)
        // The common request has none of these, and then every field is kept.
        if facts.hasHopByHop || facts.hasExpect || facts.forwardedForCount > 0 || facts.hasForwardedProto
            || (facts.hasForwardedHost && replacesHost) || (!keptClientID && facts.requestID != nil)
        {
            var previousHops: [String] = []
            for (name, value) in headers where !facts.isHopByHop(name) {
                switch name.utf8.count {
                case 6 where name.isASCII(caseInsensitiveEqualTo: "expect"): continue
                case 12 where !keptClientID && name.isASCII(caseInsensitiveEqualTo: "x-request-id"): continue
                case 16 where replacesHost && name.isASCII(caseInsensitiveEqualTo: "x-forwarded-host"): continue
                case 17 where name.isASCII(caseInsensitiveEqualTo: "x-forwarded-proto"): continue
                case 15 where name.isASCII(caseInsensitiveEqualTo: "x-forwarded-for"):
                    previousHops.append(value)
                    continue
                default: fields.append((name, value))
                }
            }
            if !previousHops.isEmpty { forwardedFor = previousHops.joined(separator: ", ") + ", " + client }
        } else {
            for (name, value) in headers { fields.append((name, value)) }
        }
        fields.append(("x-forwarded-for", forwardedFor))
        fields.append(("x-forwarded-proto", scheme))
        if replacesHost { fields.append(("x-forwarded-host", host)) }
        if !keptClientID { fields.append(("x-request-id", requestID)) }
        if chunked { fields.append(("transfer-encoding", "chunked")) }
        headers = HTTPHeaders(fields)
    }
}
