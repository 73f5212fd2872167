import GantryCore
import Yams

/// A problem met while decoding; located by the decoder that catches it when the thrower did
/// not know where it was (a type's own `init(from:)`).
public struct SpecProblem: Error, Sendable {
    public var message: String
    var path: SpecPath?
    var location: SourceLocation?

    public init(_ message: String) {
        self.message = message
    }
}

/// Unwinds after a problem was recorded, so it is not recorded twice.
struct AlreadyReported: Error {}

/// Decodes `Decodable` spec types from a Yams node tree and collects every problem instead of
/// stopping at the first: a value that fails to decode is recorded with its path and line and
/// becomes nil (spec fields are optional), so decoding goes on with its siblings. Unknown keys
/// are problems too, with a suggestion among the keys the type asked for.
///
/// Written here because Yams' `YAMLDecoder` stops at the first error and keeps no positions.
final class SpecDecoding {
    let file: String
    private(set) var issues: [ConfigIssue] = []
    private var unknownKeys: [(issue: ConfigIssue, key: String, asked: AskedKeys)] = []

    init(file: String) {
        self.file = file
    }

    func decode<T: Decodable>(_ type: T.Type, from node: Node) -> T? {
        let decoder = NodeDecoder(node: node, path: SpecPath(), session: self)
        let value = decoder.attempt { try decoder.value(T.self) }
        for pending in unknownKeys {
            var issue = pending.issue
            issue.message += Suggestion.hint(for: pending.key, among: pending.asked.names.sorted())
            issues.append(issue)
        }
        unknownKeys.removeAll()
        return value
    }

    func record(_ problem: SpecProblem, at decoder: NodeDecoder) {
        issues.append(
            ConfigIssue(
                file: file, location: problem.location ?? decoder.node.location, path: problem.path ?? decoder.path,
                message: problem.message))
    }

    func recordUnknownKey(_ key: String, node: Node, path: SpecPath, asked: AskedKeys) {
        let issue = ConfigIssue(file: file, location: node.location, path: path, message: "unknown key \"\(key)\"")
        unknownKeys.append((issue, key, asked))
    }

    func recordDuplicateKey(_ key: String, node: Node, path: SpecPath) {
        issues.append(ConfigIssue(file: file, location: node.location, path: path, message: "duplicate key \"\(key)\""))
    }
}

/// Spec types that are one of several kinds, each a key of their mapping: a policy is jwt or
/// rateLimit or …, a probe is httpGet, tcpSocket, grpc or exec, a hash is on clientIP, a header or a
/// cookie. The decoder checks that exactly one is set before the type decodes, the one place
/// that rule is written, and the problem points at the mapping. The compiler then reads the
/// one that is set.
public protocol ExclusiveKeys {
    static var exclusiveKeys: ExclusiveKeySet { get }
}

/// The keys of which exactly one must be set.
public struct ExclusiveKeySet: Sendable {
    /// Each key, and how the problem's text shows it (`header: NAME`).
    let choices: [(key: String, shown: String)]
    /// "policy kind" reads "set exactly one policy kind: …"; without, "set exactly one of …".
    let noun: String?
    /// Keys whose value is true or false: set only when true (`clientIP: true`).
    let flags: Set<String>

    init(_ choices: [(key: String, shown: String)], noun: String? = nil, flags: Set<String> = []) {
        self.choices = choices
        self.noun = noun
        self.flags = flags
    }

    /// Keys shown as they are.
    init(_ keys: [String], noun: String? = nil) {
        self.init(keys.map { ($0, $0) }, noun: noun)
    }

    /// How many of the keys `node`, a mapping, sets.
    func setCount(in node: Node) -> Int {
        guard case .mapping(let mapping) = node else { return 0 }
        var set = 0
        for (key, value) in mapping {
            guard let name = key.scalar?.string, choices.contains(where: { $0.key == name }), !value.isNull else { continue }
            if flags.contains(name), value.scalar?.string != "true" { continue }
            set += 1
        }
        return set
    }
}

/// The keys a type asked for while decoding a mapping: the valid keys, for suggestions.
final class AskedKeys {
    var names: Set<String> = []
}

extension Node {
    var location: SourceLocation? {
        mark.map { SourceLocation(line: $0.line, column: $0.column) }
    }

    var kindName: String {
        switch self {
        case .scalar: return "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The node's content with mapping keys in order and without positions or quoting: equal for
    /// two nodes that say the same thing however the file lays them out.
    var canonicalText: String {
        switch self {
        case .scalar(let scalar):
            return JSONText.quoted(scalar.string)
        case .mapping(let mapping):
            let pairs = mapping.map { ($0.key.canonicalText, $0.value.canonicalText) }.sorted { $0.0 < $1.0 }
            return "{" + pairs.map { "\($0):\($1)" }.joined(separator: ",") + "}"
        case .sequence(let sequence):
            return "[" + sequence.map(\.canonicalText).joined(separator: ",") + "]"
        case .alias(let alias):
            return "*" + alias.anchor.rawValue
        }
    }

    /// `~`, `null` and the empty plain scalar, which YAML reads as null.
    var isNull: Bool {
        guard case .scalar(let scalar) = self, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}

struct NodeDecoder: Decoder {
    let node: Node
    let path: SpecPath
    let session: SpecDecoding

    var codingPath: [any CodingKey] {
        path.components.map { component -> any CodingKey in
            switch component {
            case .key(let key): return SpecKey(stringValue: key)
            case .index(let index): return SpecKey(intValue: index)
            }
        }
    }

    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func child(_ node: Node, _ component: PathComponent) -> NodeDecoder {
        NodeDecoder(node: node, path: SpecPath(path.components + [component]), session: session)
    }

    /// Runs a decode step; records its problem and returns nil if it fails.
    func attempt<T>(_ body: () throws -> T) -> T? {
        do {
            return try body()
        } catch let problem as SpecProblem {
            session.record(problem, at: self)
        } catch is AlreadyReported {
        } catch let error as DecodingError {
            session.record(SpecProblem(Self.describe(error)), at: self)
        } catch {
            session.record(SpecProblem("\(error)"), at: self)
        }
        return nil
    }

    /// Decodes a value of `type` from this node, after the one rule the decoder checks for
    /// every type it applies to (``ExclusiveKeys``). A broken rule is reported and the value
    /// still decodes, so that its own problems, and its siblings' in a list, are reported too.
    func value<T: Decodable>(_ type: T.Type) throws -> T {
        if let exclusive = T.self as? any ExclusiveKeys.Type, let problem = check(exclusive.exclusiveKeys) {
            session.record(problem, at: self)
        }
        return try T(from: self)
    }

    /// Exactly one of the keys is set in this mapping, or the problem.
    private func check(_ keys: ExclusiveKeySet) -> SpecProblem? {
        guard case .mapping = node, keys.setCount(in: node) != 1 else { return nil }  // not a mapping: the type says what is wrong
        let shown = keys.choices.map(\.shown)
        let list = shown.count > 1 ? shown.dropLast().joined(separator: ", ") + " or " + shown.last! : shown.joined()
        return problem(keys.noun.map { "set exactly one \($0): \(list)" } ?? "set exactly one of \(list)")
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context),
            .dataCorrupted(let context):
            return context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }

    func problem(_ message: String) -> SpecProblem {
        var problem = SpecProblem(message)
        problem.path = path
        problem.location = node.location
        return problem
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .mapping(let mapping) = node else {
            throw problem("expected a mapping, found \(node.kindName)")
        }
        let asked = AskedKeys()
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                session.record(SpecProblem("mapping keys must be plain strings"), at: child(keyNode, .key("?")))
                continue
            }
            let key = scalar.string
            if values[key] != nil {
                session.recordDuplicateKey(key, node: keyNode, path: path / key)
                continue
            }
            if Key(stringValue: key) == nil {
                session.recordUnknownKey(key, node: keyNode, path: path / key, asked: asked)
                continue
            }
            values[key] = value
        }
        return KeyedDecodingContainer(NodeKeyedContainer<Key>(decoder: self, values: values, asked: asked))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .sequence(let sequence) = node else {
            throw problem("expected a list, found \(node.kindName)")
        }
        return NodeUnkeyedContainer(decoder: self, elements: Array(sequence))
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        NodeValueContainer(decoder: self)
    }
}

struct SpecKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) {
        self.stringValue = stringValue
    }
    init(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

struct NodeKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let values: [String: Node]
    let asked: AskedKeys

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { values.keys.sorted().compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool {
        asked.names.insert(key.stringValue)
        return values[key.stringValue] != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        asked.names.insert(key.stringValue)
        return values[key.stringValue]?.isNull ?? true
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        asked.names.insert(key.stringValue)
        guard let node = values[key.stringValue], !node.isNull else { return nil }
        let child = decoder.child(node, .key(key.stringValue))
        return child.attempt { try child.value(T.self) }
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        asked.names.insert(key.stringValue)
        guard let node = values[key.stringValue], !node.isNull else {
            throw decoder.problem("missing required key \"\(key.stringValue)\"")
        }
        let child = decoder.child(node, .key(key.stringValue))
        guard let value = child.attempt({ try child.value(T.self) }) else { throw AlreadyReported() }
        return value
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        asked.names.insert(key.stringValue)
        guard let node = values[key.stringValue] else { throw decoder.problem("missing key \"\(key.stringValue)\"") }
        return try decoder.child(node, .key(key.stringValue)).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        asked.names.insert(key.stringValue)
        guard let node = values[key.stringValue] else { throw decoder.problem("missing key \"\(key.stringValue)\"") }
        return try decoder.child(node, .key(key.stringValue)).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        guard let node = values[key.stringValue] else { throw decoder.problem("missing key \"\(key.stringValue)\"") }
        return decoder.child(node, .key(key.stringValue))
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decode(type as Bool.Type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decode(type as String.Type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decode(type as Double.Type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decode(type as Int.Type, key) }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try decodeIfPresent(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try decodeIfPresent(type, key) }

    // The remaining primitive overloads of the protocol are rarely used by spec types; route
    // them all through the generic path, which decodes via the single-value container.
    private func decode<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        try decode(type, forKey: key)
    }
    private func decodeIfPresent<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        try decodeIfPresent(type, forKey: key)
    }
}

struct NodeUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let elements: [Node]
    var currentIndex = 0

    init(decoder: NodeDecoder, elements: [Node]) {
        self.decoder = decoder
        self.elements = elements
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw decoder.problem("list ended early") }
        if elements[currentIndex].isNull {
            currentIndex += 1
            return true
        }
        return false
    }

    /// Decodes the next element. If it fails, the rest are still decoded (and discarded) so their
    /// problems are reported too, then the whole list unwinds.
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        guard !isAtEnd else { throw decoder.problem("list ended early") }
        let child = decoder.child(elements[currentIndex], .index(currentIndex))
        currentIndex += 1
        if let value = child.attempt({ try child.value(T.self) }) { return value }
        while !isAtEnd {
            let next = decoder.child(elements[currentIndex], .index(currentIndex))
            _ = next.attempt { try next.value(T.self) }
            currentIndex += 1
        }
        throw AlreadyReported()
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        guard !isAtEnd else { throw decoder.problem("list ended early") }
        defer { currentIndex += 1 }
        return try decoder.child(elements[currentIndex], .index(currentIndex)).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard !isAtEnd else { throw decoder.problem("list ended early") }
        defer { currentIndex += 1 }
        return try decoder.child(elements[currentIndex], .index(currentIndex)).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        guard !isAtEnd else { throw decoder.problem("list ended early") }
        defer { currentIndex += 1 }
        return decoder.child(elements[currentIndex], .index(currentIndex))
    }
}

/// Scalars are read strictly: `true`/`false` only for booleans, no quoted numbers.
struct NodeValueContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.node.isNull }

    private func scalar(_ expected: String) throws -> Node.Scalar {
        guard case .scalar(let scalar) = decoder.node else {
            throw decoder.problem("expected \(expected), found \(decoder.node.kindName)")
        }
        return scalar
    }

    private func plain(_ expected: String) throws -> String {
        let scalar = try scalar(expected)
        guard scalar.style == .plain || scalar.style == .any else {
            throw decoder.problem("expected \(expected), found the quoted string \"\(scalar.string)\"")
        }
        return scalar.string
    }

    func decode(_ type: String.Type) throws -> String { try scalar("a string").string }

    func decode(_ type: Bool.Type) throws -> Bool {
        switch try plain("true or false") {
        case "true": return true
        case "false": return false
        case let other: throw decoder.problem("expected true or false, found \"\(other)\"")
        }
    }

    func decode(_ type: Double.Type) throws -> Double {
        let text = try plain("a number")
        guard let value = Double(text), value.isFinite else { throw decoder.problem("expected a number, found \"\(text)\"") }
        return value
    }

    func decode(_ type: Float.Type) throws -> Float { Float(try decode(Double.self)) }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let text = try plain("an integer")
        guard let value = T(text) else {
            throw decoder.problem("expected an integer, found \"\(text)\"")
        }
        return value
    }

    func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }

    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.value(T.self) }
}
