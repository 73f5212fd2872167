/// A series selector in Prometheus' own notation, `name{label="value",…}` with exact label
/// matches only, and its value in a scrape in the text exposition format (version 0.0.4): the
/// sum over every sample of that name whose labels include the matchers, as a PromQL
/// `sum(name{…})` would give. Written here: the one reader of the format gantry needs is this
/// small, and swift-prometheus writes the format but does not read it.
public struct PrometheusSeries: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    public let labels: [String: String]

    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }

    /// Parses `name` or `name{a="x",b="y"}`; nil when it is neither.
    public init?(parsing text: String) {
        var rest = Substring(text.trimmingSpaces)
        let name = rest.prefix { Self.isNameCharacter($0) }
        guard !name.isEmpty, !name.first!.isNumber else { return nil }
        rest = rest.dropFirst(name.count)
        guard let labels = Self.labels(&rest), rest.isEmpty else { return nil }
        self.init(name: String(name), labels: labels)
    }

    public var description: String {
        labels.isEmpty ? name : name + "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",") + "}"
    }

    /// The sum of the matching samples in `exposition`, or nil when none matches.
    public func value(in exposition: String) -> Double? {
        var total: Double?
        for line in exposition.split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            var rest = Substring(line.trimmingSpaces)
            let sampleName = rest.prefix { Self.isNameCharacter($0) }
            guard sampleName == name else { continue }
            rest = rest.dropFirst(sampleName.count)
            guard let sampleLabels = Self.labels(&rest), labels.allSatisfy({ sampleLabels[$0.key] == $0.value }) else { continue }
            guard let valueText = rest.split(separator: " ", omittingEmptySubsequences: true).first, let value = Double(valueText) else { continue }
            total = (total ?? 0) + value
        }
        return total
    }

    /// `{a="x",b="y"}` at the start of `rest` (consumed), or no braces at all: the labels; nil
    /// when malformed.
    private static func labels(_ rest: inout Substring) -> [String: String]? {
        guard rest.first == "{" else { return [:] }
        rest = rest.dropFirst()
        var labels: [String: String] = [:]
        while true {
            rest = rest.drop { $0 == " " || $0 == "," }
            if rest.first == "}" {
                rest = rest.dropFirst()
                return labels
            }
            let key = rest.prefix { isNameCharacter($0) }
            guard !key.isEmpty else { return nil }
            rest = rest.dropFirst(key.count).drop { $0 == " " }
            guard rest.first == "=" else { return nil }
            rest = rest.dropFirst().drop { $0 == " " }
            guard rest.first == "\"" else { return nil }
            rest = rest.dropFirst()
            var value = ""
            while let character = rest.first, character != "\"" {
                rest = rest.dropFirst()
                if character == "\\", let escaped = rest.first {
                    rest = rest.dropFirst()
                    value.append(escaped == "n" ? "\n" : escaped)
                } else {
                    value.append(character)
                }
            }
            guard rest.first == "\"" else { return nil }
            rest = rest.dropFirst()
            labels[String(key)] = value
        }
    }

    private static func isNameCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || character == "_" || character == ":")
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: Substring {
        let text = Substring(self)
        let start = text.firstIndex { $0 != " " && $0 != "\t" } ?? text.endIndex
        let end = text.lastIndex { $0 != " " && $0 != "\t" }.map(text.index(after:)) ?? start
        return text[start..<Swift.max(start, end)]
    }
}
