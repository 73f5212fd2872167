/// A path rewrite by regular expression: the whole path must match; `$1`… in the replacement
/// stand for the capture groups. Matched in linear time (``LinearRegex``): the path is the
/// client's.
public struct RewritePattern: Sendable {
    public let source: String
    private let regex: LinearRegex

    public init(_ source: String) throws {
        self.source = source
        self.regex = try LinearRegex(source)
    }

    /// The rewritten path, or nil when the path does not match.
    public func rewrite(_ path: String, with replacement: String) -> String? {
        guard let groups = regex.wholeMatchGroups(path) else { return nil }
        var result = ""
        var index = replacement.startIndex
        while index < replacement.endIndex {
            let character = replacement[index]
            let next = replacement.index(after: index)
            if character == "$", next < replacement.endIndex, let group = replacement[next].wholeNumberValue {
                if group < groups.count, let captured = groups[group] { result += captured }
                index = replacement.index(after: next)
            } else {
                result.append(character)
                index = next
            }
        }
        return result
    }
}
