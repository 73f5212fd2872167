import GantryCore
import NIOHTTP1

/// The header changes a reverse proxy makes on the way upstream and back.
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
        headers.add(name: "x-forwarded-for", value: forwardedFor)
        headers.add(name: "x-forwarded-proto", value: scheme)
        if replacesHost { headers.add(name: "x-forwarded-host", value: host) }
        if !keptClientID { headers.add(name: "x-request-id", value: requestID) }
        if chunked { headers.add(name: "transfer-encoding", value: "chunked") }
    }

    /// Downstream response: drops hop-by-hop fields (keeping chunked framing, which the encoder
    /// re-declares) and stamps the request ID.
    static func prepareResponse(_ headers: inout HTTPHeaders, requestID: String) {
        let facts = HeaderFacts(headers)
        if facts.onlyConnectionIsHopByHop || (!facts.hasHopByHop && facts.requestID != nil) {
            // Removed in place: copying the block for one field cost more than the rest of
            // this function.
            if facts.hasHopByHop { headers.remove(name: "connection") }
            if facts.requestID != nil { headers.remove(name: "x-request-id") }
        } else if facts.hasHopByHop || facts.requestID != nil {
            headers = filtered(headers, facts: facts) { name, _ in
                name.utf8.count == 12 && name.isASCII(caseInsensitiveEqualTo: "x-request-id")
            }
        }
        if !facts.transferEncodings.isEmpty, Framing.endsChunked(facts.transferEncodings) {
            headers.add(name: "transfer-encoding", value: "chunked")
        }
        headers.add(name: "x-request-id", value: requestID)
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
