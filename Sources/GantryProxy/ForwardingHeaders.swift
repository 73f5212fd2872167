import GantryCore
import NIOHTTP1

/// The header changes a reverse proxy makes on the way upstream and back.
enum ForwardingHeaders {
    /// Upstream request: drops hop-by-hop fields (RFC 9110 §7.6.1, and every field `Connection`
    /// names) and `Expect` (gantry answers `100-continue` itself), sets `X-Forwarded-For`
    /// (appending the client), `-Proto`, `-Host` and `X-Request-ID`, and re-declares chunked
    /// framing, which the removal of `Transfer-Encoding` took away.
    /// - Returns: whether the client asked for `100-continue`.
    static func prepare(
        _ headers: inout HTTPHeaders, client: String, scheme: String, host: String, requestID: String, keptClientID: Bool,
        chunked: Bool
    ) -> Bool {
        removeHopByHop(&headers)
        var expectsContinue = false
        if headers.contains(name: "expect") {
            expectsContinue = headers[canonicalForm: "expect"].contains { $0.lowercased() == "100-continue" }
            headers.remove(name: "expect")
        }
        let forwardedFor = headers[canonicalForm: "x-forwarded-for"]
        if forwardedFor.isEmpty {
            headers.add(name: "x-forwarded-for", value: client)
        } else {
            headers.replaceOrAdd(name: "x-forwarded-for", value: forwardedFor.joined(separator: ", ") + ", " + client)
        }
        headers.replaceOrAdd(name: "x-forwarded-proto", value: scheme)
        if !host.isEmpty { headers.replaceOrAdd(name: "x-forwarded-host", value: host) }
        if !keptClientID { headers.replaceOrAdd(name: "x-request-id", value: requestID) }
        if chunked { headers.add(name: "transfer-encoding", value: "chunked") }
        return expectsContinue
    }

    /// Downstream response: drops hop-by-hop fields (keeping chunked framing, which the encoder
    /// re-declares) and stamps the request ID.
    static func prepareResponse(_ headers: inout HTTPHeaders, requestID: String) {
        let chunked = headers[canonicalForm: "transfer-encoding"].last?.lowercased() == "chunked"
        removeHopByHop(&headers)
        if chunked { headers.add(name: "transfer-encoding", value: "chunked") }
        headers.replaceOrAdd(name: "x-request-id", value: requestID)
    }

    /// Removes hop-by-hop fields. One pass finds out whether there is anything to remove, so the
    /// common request without any costs no copy.
    static func removeHopByHop(_ headers: inout HTTPHeaders) {
        var found = false
        for (name, _) in headers where isHopByHop(name) {
            found = true
            break
        }
        guard found else { return }
        for name in HopByHop.nominated(by: headers[canonicalForm: "connection"]) where !isProtected(name) {
            headers.remove(name: name)
        }
        for name in HopByHop.fields { headers.remove(name: name) }
    }

    /// Fields a client may not remove by naming them in `Connection`: the proxy's own
    /// forwarding facts and the message's framing and routing.
    private static func isProtected(_ name: String) -> Bool {
        switch name {
        case "host", "content-length", "x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host": return true
        default: return false
        }
    }

    private static func isHopByHop(_ name: String) -> Bool {
        switch name.utf8.count {
        case 2, 7, 10, 16, 17: return HopByHop.fields.contains(name.lowercased())
        default: return false
        }
    }
}
