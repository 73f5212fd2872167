/// The host part of an ingress rule, with Kubernetes Ingress semantics.
///
/// `example.com` matches exactly; `*.example.com` matches exactly one DNS label in front of
/// `example.com` (`a.example.com`, not `example.com` nor `a.b.example.com`); no host matches any.
/// Matching ignores case and any port; callers pass a host already normalised by
/// ``HostPattern/normalize(_:)``.
public enum HostPattern: Sendable, Hashable, CustomStringConvertible {
    case any
    case exact(String)
    /// The domain after `*.`, lowercased (`example.com` for `*.example.com`).
    case wildcard(String)

    /// Parses a rule's host. Returns nil for a malformed pattern (validation reports it).
    public init?(rule: String?) {
        guard let raw = rule, !raw.isEmpty else {
            self = .any
            return
        }
        let host = raw.lowercased()
        if host.hasPrefix("*.") {
            let domain = String(host.dropFirst(2))
            guard HostPattern.isValidDomain(domain) else { return nil }
            self = .wildcard(domain)
        } else {
            guard HostPattern.isValidDomain(host) else { return nil }
            self = .exact(host)
        }
    }

    public var description: String {
        switch self {
        case .any: return "*"
        case .exact(let host): return host
        case .wildcard(let domain): return "*.\(domain)"
        }
    }

    /// Whether an already-normalised request host matches this pattern.
    public func matches(_ host: Substring) -> Bool {
        switch self {
        case .any:
            return true
        case .exact(let name):
            return host.utf8.elementsEqual(name.utf8)
        case .wildcard(let domain):
            guard let dot = host.utf8.firstIndex(of: UInt8(ascii: ".")), dot != host.startIndex else { return false }
            return host[host.index(after: dot)...].utf8.elementsEqual(domain.utf8)
        }
    }

    /// Lowercases a `Host` header value and strips its port and a trailing dot:
    /// `Example.COM:8080` → `example.com`, `[::1]:80` → `[::1]`.
    public static func normalize(_ header: Substring) -> Substring {
        var host = header
        if host.utf8.first == UInt8(ascii: "[") {
            if let close = host.utf8.firstIndex(of: UInt8(ascii: "]")) {
                host = host[...close]
            }
        } else if let colon = host.utf8.lastIndex(of: UInt8(ascii: ":")) {
            host = host[..<colon]
        }
        if host.utf8.last == UInt8(ascii: ".") { host = host.dropLast() }
        if host.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            return Substring(host.lowercased())
        }
        return host
    }

    /// RFC 1123 host names: dot-separated labels of letters, digits and hyphens, 1–63 bytes each,
    /// not starting or ending with a hyphen. IP literals are accepted as exact hosts too.
    public static func isValidDomain(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63,
                label.utf8.first != UInt8(ascii: "-"), label.utf8.last != UInt8(ascii: "-"),
                label.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        return true
    }
}

@inline(__always)
func isAlphanumeric(_ byte: UInt8) -> Bool {
    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
        || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
}
