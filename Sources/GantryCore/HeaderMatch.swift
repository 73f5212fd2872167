/// A header condition on an ingress rule (Gateway API `HTTPHeaderMatch`).
public struct HeaderMatch: Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case exact(String)
        case present
        case regex(RegexPattern)
    }

    /// Lowercased header name.
    public let name: String
    public let kind: Kind

    public init(name: String, kind: Kind) {
        self.name = name.lowercased()
        self.kind = kind
    }

    public func matches(_ headers: some HeaderLookup) -> Bool {
        guard let value = headers.first(name: name) else { return false }
        switch kind {
        case .exact(let expected): return value == expected
        case .present: return true
        case .regex(let pattern): return pattern.wholeMatch(value)
        }
    }

    public var description: String {
        switch kind {
        case .exact(let value): return "\(name)=\(value)"
        case .present: return "\(name) present"
        case .regex(let pattern): return "\(name)~\(pattern.source)"
        }
    }
}

/// A compiled regular expression, matched in time linear in the input (``LinearRegex``).
public struct RegexPattern: Sendable {
    public let source: String
    private let regex: LinearRegex

    public init(_ source: String) throws {
        self.source = source
        self.regex = try LinearRegex(source)
    }

    public func wholeMatch(_ value: String) -> Bool {
        regex.wholeMatch(value)
    }

    public func containsMatch(_ value: String) -> Bool {
        regex.containsMatch(value)
    }
}
