/// Which of a listener's certificates answers a TLS ClientHello, by its SNI name, the way
/// nginx and Envoy choose: an exact name first, then a wildcard (`*.example.com` covers exactly
/// one label, RFC 6125 §6.4.3), else the first certificate (the default, also for clients that
/// send no SNI).
public struct CertificateSelector: Sendable, Hashable {
    private var exact: [String: Int] = [:]
    private var wildcard: [String: Int] = [:]

    /// - Parameter names: each certificate's DNS names, in the listener's order.
    public init(names: [[String]]) {
        for (index, list) in names.enumerated() {
            for name in list.map({ $0.lowercased() }) {
                if name.hasPrefix("*.") {
                    if wildcard[String(name.dropFirst(2))] == nil { wildcard[String(name.dropFirst(2))] = index }
                } else if exact[name] == nil {
                    exact[name] = index
                }
            }
        }
    }

    /// The index of the certificate for `serverName`; 0 when none names it.
    public func select(_ serverName: String?) -> Int {
        guard var name = serverName?.lowercased(), !name.isEmpty else { return 0 }
        if name.hasSuffix(".") { name.removeLast() }
        if let index = exact[name] { return index }
        if let dot = name.firstIndex(of: "."), let index = wildcard[String(name[name.index(after: dot)...])] { return index }
        return 0
    }
}
