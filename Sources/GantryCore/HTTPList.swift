/// Comma-separated list fields (RFC 9110 §5.6.1) such as `Connection` and `Transfer-Encoding`.
public enum HTTPList {
    /// The lowercased, non-empty elements of list field values, in order, e.g.
    /// `["gzip, Chunked"]` → `["gzip", "chunked"]`.
    public static func lowercasedTokens(in values: some Sequence<some StringProtocol>) -> [String] {
        var tokens: [String] = []
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingWhitespace().lowercased()
                if !name.isEmpty { tokens.append(name) }
            }
        }
        return tokens
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        var slice = self[...]
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}
