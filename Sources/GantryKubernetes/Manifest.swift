/// A Kubernetes object as it is written out: keys in the order a reader expects them
/// (`apiVersion`, `kind`, `metadata`, `spec`), comments where a gantry field has no Kubernetes
/// equivalent. Yams emits YAML but no comments, so this small writer is written here: block
/// style, strings quoted only where YAML would read them as something else, the same bytes for
/// the same object every time.
public indirect enum Manifest: Sendable, Equatable {
    case string(String)
    /// A plain scalar written as it stands: a number or boolean copied from gantry.yaml.
    case raw(String)
    case int(Int)
    case bool(Bool)
    case list([Manifest])
    case map(ManifestMap)

    /// The value at a key path, for tests and for the writer's own checks.
    public subscript(_ path: String...) -> Manifest? {
        var node: Manifest? = self
        for key in path {
            switch node {
            case .map(let map)?: node = map[key]
            case .list(let items)?: node = Int(key).flatMap { items.indices.contains($0) ? items[$0] : nil }
            default: return nil
            }
        }
        return node
    }
}

/// A mapping in insertion order, each key with an optional comment written above it.
public struct ManifestMap: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let key: String
        public var value: Manifest
        public var comment: String?
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public subscript(key: String) -> Manifest? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let index = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append(Entry(key: key, value: newValue))
            }
        }
    }

    /// Sets a key, with a comment above it.
    public mutating func set(_ key: String, _ value: Manifest, comment: String?) {
        self[key] = value
        if let index = entries.firstIndex(where: { $0.key == key }) { entries[index].comment = comment }
    }

    public var isEmpty: Bool { entries.isEmpty }
}

extension Manifest: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: Manifest...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, Manifest)...) {
        var map = ManifestMap()
        for (key, value) in elements { map[key] = value }
        self = .map(map)
    }

    public var map: ManifestMap? {
        if case .map(let map) = self { return map }
        return nil
    }

    public var string: String? {
        switch self {
        case .string(let text), .raw(let text): return text
        default: return nil
        }
    }

    public var int: Int? {
        if case .int(let value) = self { return value }
        return nil
    }
}

/// One YAML document: an object and the comment lines above it.
public struct ManifestDocument: Sendable {
    public let comment: String?
    public let object: Manifest

    public init(_ object: Manifest, comment: String? = nil) {
        self.object = object
        self.comment = comment
    }

    public var kind: String { object["kind"]?.string ?? "" }
    public var name: String { object["metadata", "name"]?.string ?? "" }

    /// The document as YAML, ending in a newline.
    public var yaml: String {
        var out = ""
        if let comment { ManifestWriter.comment(comment, indent: "", into: &out) }
        ManifestWriter.write(object, indent: "", into: &out)
        return out
    }
}

enum ManifestWriter {
    static func comment(_ text: String, indent: String, into out: inout String) {
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            out += line.isEmpty ? "\(indent)#\n" : "\(indent)# \(line)\n"
        }
    }

    /// Writes a mapping or a list at `indent`, one entry a line.
    static func write(_ value: Manifest, indent: String, into out: inout String) {
        switch value {
        case .map(let map):
            for entry in map.entries {
                if let note = entry.comment { comment(note, indent: indent, into: &out) }
                out += indent + key(entry.key) + ":"
                writeValue(entry.value, indent: indent, into: &out)
            }
        case .list(let items):
            for item in items {
                switch item {
                case .map(let map) where !map.isEmpty:
                    // `- ` then the mapping's first key on the same line, the rest aligned with it.
                    var nested = ""
                    write(item, indent: indent + "  ", into: &nested)
                    out += indent + "- " + nested.dropFirst(indent.count + 2)
                case .list(let inner) where !inner.isEmpty:
                    out += indent + "-\n"
                    write(item, indent: indent + "  ", into: &out)
                default:
                    out += indent + "-"
                    writeValue(item, indent: indent, into: &out)
                }
            }
        default:
            out += scalar(value, indent: indent) + "\n"
        }
    }

    /// What follows `key:` or `-`: a scalar on the same line, or a nested block below.
    private static func writeValue(_ value: Manifest, indent: String, into out: inout String) {
        switch value {
        case .map(let map) where map.isEmpty: out += " {}\n"
        case .list(let items) where items.isEmpty: out += " []\n"
        case .map, .list:
            out += "\n"
            write(value, indent: indent + "  ", into: &out)
        default:
            out += " " + scalar(value, indent: indent) + "\n"
        }
    }

    private static func scalar(_ value: Manifest, indent: String) -> String {
        switch value {
        case .int(let number): return String(number)
        case .raw(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .string(let text): return string(text, indent: indent)
        case .map, .list: return ""
        }
    }

    private static func key(_ text: String) -> String { isPlain(text) ? text : quoted(text) }

    /// A multi-line string as a literal block (a ConfigMap's file); anything YAML would read as
    /// a number, a boolean or null, or that holds YAML's indicators, in double quotes.
    static func string(_ text: String, indent: String) -> String {
        if text.contains("\n"), !text.hasPrefix(" "), !text.contains("\t"), !text.contains("\r"), !text.hasSuffix(" \n") {
            let chomping = text.hasSuffix("\n\n") ? "+" : text.hasSuffix("\n") ? "" : "-"
            var block = "|" + chomping
            var body = text
            if body.hasSuffix("\n") { body.removeLast() }
            for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
                block += line.isEmpty ? "\n" : "\n\(indent)  \(line)"
            }
            return block
        }
        return isPlain(text) ? text : quoted(text)
    }

    private static let ambiguous: Set<String> = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ]

    static func isPlain(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, !ambiguous.contains(text.lowercased()) else { return false }
        // A leading digit, sign or dot could read as a number (YAML 1.1 also reads 1:30 as one).
        guard first.properties.isAlphabetic || first == "/" || first == "_" else { return false }
        return text.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_./@%+=".unicodeScalars.contains(scalar))
                || scalar == ":"
        } && !text.hasSuffix(":") && !text.contains(": ")
    }

    /// JSON's string syntax, which is YAML's double-quoted style.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
