/// A query-parameter condition on an ingress rule (Gateway API `HTTPQueryParamMatch`): the
/// parameter's name and value compared case-sensitively, the value percent-decoded first. When
/// a name appears more than once, the first one counts, as Gateway API says.
public struct QueryMatch: Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case exact(String)
        case regex(RegexPattern)
    }

    public let name: String
    public let kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name
        self.kind = kind
    }

    /// Whether `query` (without its `?`, nil when the target has none) satisfies the condition.
    public func matches(_ query: Substring?) -> Bool {
        guard let query, let value = Self.firstValue(of: name, in: query) else { return false }
        switch kind {
        case .exact(let expected): return value == expected
        case .regex(let pattern): return pattern.wholeMatch(value)
        }
    }

    /// The first value of `name`, percent-decoded (`+` stays a plus: RFC 3986 has no space for it).
    static func firstValue(of name: String, in query: Substring) -> String? {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let equals = pair.firstIndex(of: "=")
            let key = equals.map { pair[..<$0] } ?? pair
            guard (key.removingPercentEncoding ?? String(key)) == name else { continue }
            let raw = equals.map { pair[pair.index(after: $0)...] } ?? ""
            return raw.removingPercentEncoding ?? String(raw)
        }
        return nil
    }

    public var description: String {
        switch kind {
        case .exact(let value): return "?\(name)=\(value)"
        case .regex(let pattern): return "?\(name)~\(pattern.source)"
        }
    }
}
