/// Hop-by-hop header fields (RFC 9110 §7.6.1): meaningful for one connection only, so a proxy
/// removes them, together with every field the `Connection` header names.
public enum HopByHop {
    /// Lowercased. `proxy-connection` is not in the RFC but is sent by old clients and removed
    /// by every major proxy.
    public static let fields: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
    ]

    /// The lowercased field names listed in `Connection` header values, e.g.
    /// `["keep-alive, X-Debug"]` → `["keep-alive", "x-debug"]`.
    public static func nominated(by connectionValues: some Sequence<some StringProtocol>) -> [String] {
        HTTPList.lowercasedTokens(in: connectionValues)
    }
}
