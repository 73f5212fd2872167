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
        // The common request has none of these, and then nothing is copied.
        if facts.hasHopByHop || facts.hasExpect || facts.forwardedForCount > 0 || facts.hasForwardedProto
            || (facts.hasForwardedHost && replacesHost) || (!keptClientID && facts.requestID != nil)
        {
            var previousHops: [String] = []
            headers = filtered(headers, facts: facts) { name, value in
                switch name.utf8.count {
                case 6: return name.isASCII(caseInsensitiveEqualTo: "expect")
                case 12: return !keptClientID && name.isASCII(caseInsensitiveEqualTo: "x-request-id")
                case 16: return replacesHost && name.isASCII(caseInsensitiveEqualTo: "x-forwarded-host")
                case 17: return name.isASCII(caseInsensitiveEqualTo: "x-forwarded-proto")
                case 15 where name.isASCII(caseInsensitiveEqualTo: "x-forwarded-for"):
                    previousHops.append(value)
                    return true
                default: return false
                }
            }
            if !previousHops.isEmpty { forwardedFor = previousHops.joined(separator: ", ") + ", " + client }
        }
        var added = [("x-forwarded-for", forwardedFor), ("x-forwarded-proto", scheme)]
        if replacesHost { added.append(("x-forwarded-host", host)) }
        if !keptClientID { added.append(("x-request-id", requestID)) }
        if chunked { added.append(("transfer-encoding", "chunked")) }
        headers.addOwn(added)
    }

    /// A copy of `headers`, in order, without hop-by-hop fields and without those `drop` picks.
    private static func filtered(
        _ headers: HTTPHeaders, facts: HeaderFacts, dropping drop: (String, String) -> Bool
    ) -> HTTPHeaders {
        var kept = HTTPHeaders()
        kept.reserveCapacity(headers.count + 5)
        for (name, value) in headers where !facts.isHopByHop(name) && !drop(name, value) {
            kept.add(name: name, value: value)
        }
        return kept
    }
}
