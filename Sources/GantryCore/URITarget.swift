import Foundation

/// A request target's path and query, split at the first `?` (RFC 3986 §3.4), and the query's
/// parameters: the one reading of them for everything that needs it (a validate policy's
/// required parameters, a token or key in the query, a redirect's `${path}` and `${query}`,
/// a path rewrite).
public struct URITarget: Sendable, Equatable {
    public let path: Substring
    /// Without its `?`; nil when the target has none.
    public let query: Substring?

    public init(_ uri: String) {
        if let mark = uri.firstIndex(of: "?") {
            path = uri[..<mark]
            query = uri[uri.index(after: mark)...]
        } else {
            path = Substring(uri)
            query = nil
        }
    }

    /// The query's parameters in order, as `name=value` pairs still percent-encoded; a
    /// parameter without `=` has an empty value.
    public var parameters: [(name: Substring, value: Substring)] {
        guard let query else { return [] }
        return query.split(separator: "&").map { pair in
            guard let equals = pair.firstIndex(of: "=") else { return (pair, pair[pair.endIndex...]) }
            return (pair[..<equals], pair[pair.index(after: equals)...])
        }
    }

    /// The first value of the parameter `name`, percent-decoded.
    public func parameter(_ name: String) -> String? {
        guard let found = parameters.first(where: { $0.name == name }) else { return nil }
        return String(found.value).removingPercentEncoding ?? ""
    }

    /// The target again, with another path and the same query.
    public func replacingPath(with path: some StringProtocol) -> String {
        String(path) + (query.map { "?\($0)" } ?? "")
    }
}

/// `Cookie` header values (RFC 6265 §4.2.1: `name=value` pairs separated by `; `): the one
/// reading of them, for a token in a cookie and a consistent hash on one.
public enum Cookies {
    /// The value of the first cookie called `name` in `headers`, the values of every
    /// `Cookie` field in order.
    public static func value(named name: String, in headers: some Sequence<String>) -> Substring? {
        for header in headers {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop(while: { $0 == " " })
                if trimmed.hasPrefix(name), trimmed.dropFirst(name.count).first == "=" {
                    return trimmed.dropFirst(name.count + 1)
                }
            }
        }
        return nil
    }
}
