/// A path rewrite by regular expression: the whole path must match; `$1`… in the replacement
/// stand for the capture groups.
public struct RewritePattern: Sendable {
    public let source: String
    private let regex: Regex<AnyRegexOutput>

    public init(_ source: String) throws {
        self.source = source
        self.regex = try Regex(source)
    }

    /// The rewritten path, or nil when the path does not match.
    public func rewrite(_ path: String, with replacement: String) -> String? {
        guard let match = try? regex.wholeMatch(in: path) else { return nil }
        var result = ""
        var index = replacement.startIndex
        while index < replacement.endIndex {
            let character = replacement[index]
            let next = replacement.index(after: index)
            if character == "$", next < replacement.endIndex, let group = replacement[next].wholeNumberValue {
                if group < match.output.count, let captured = match.output[group].substring { result += captured }
                index = replacement.index(after: next)
            } else {
                result.append(character)
                index = next
            }
        }
        return result
    }
}
