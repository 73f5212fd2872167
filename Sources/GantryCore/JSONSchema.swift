import Foundation

/// A JSON Schema subset for request bodies: `type` (one or a list), `required`, `properties`,
/// `additionalProperties` (a boolean or a schema), `enum`, `minimum`/`maximum`,
/// `minLength`/`maxLength`, `pattern` and `items`. No Swift JSON Schema package is in our
/// set, so this small validator is written here; unknown keywords are errors when compiling,
/// so a schema never silently checks less than its author thinks.
public indirect enum JSONSchema: Sendable {
    case schema(Node)

    public struct Node: Sendable {
        var types: [String]?
        var required: [String] = []
        var properties: [String: JSONSchema] = [:]
        var additionalProperties: Additional = .allowed
        var enumeration: [JSONValue]?
        var minimum: Double?
        var maximum: Double?
        var minLength: Int?
        var maxLength: Int?
        var pattern: RegexPattern?
        var items: JSONSchema?
    }

    enum Additional: Sendable {
        case allowed, forbidden
        case schema(JSONSchema)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    static let keywords: Set<String> = [
        "type", "required", "properties", "additionalProperties", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern",
        "items", "$schema", "title", "description",
    ]
    static let typeNames: Set<String> = ["string", "number", "integer", "boolean", "object", "array", "null"]

    public init(json: Data) throws {
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: json) else { throw Invalid(description: "the schema is not JSON") }
        self = try Self.compile(value, at: "#")
    }

    static func compile(_ value: JSONValue, at path: String) throws -> JSONSchema {
        guard case .object(let object) = value else { throw Invalid(description: "\(path): a schema must be an object") }
        var node = Node()
        for key in object.keys where !keywords.contains(key) {
            throw Invalid(description: "\(path): \(key) is not supported (supported: \(keywords.sorted().joined(separator: ", ")))")
        }
        switch object["type"] {
        case nil: break
        case .string(let type)?: node.types = [type]
        case .array(let list)?: node.types = list.compactMap { if case .string(let type) = $0 { type } else { nil } }
        default: throw Invalid(description: "\(path)/type: must be a type name or a list of them")
        }
        if let types = node.types, let unknown = types.first(where: { !typeNames.contains($0) }) {
            throw Invalid(description: "\(path)/type: unknown type \(unknown)")
        }
        if case .array(let names)? = object["required"] {
            node.required = names.compactMap { if case .string(let name) = $0 { name } else { nil } }
        }
        if case .object(let properties)? = object["properties"] {
            for (name, schema) in properties { node.properties[name] = try compile(schema, at: "\(path)/properties/\(name)") }
        }
        switch object["additionalProperties"] {
        case .bool(false)?: node.additionalProperties = .forbidden
        case .object?: node.additionalProperties = .schema(try compile(object["additionalProperties"]!, at: "\(path)/additionalProperties"))
        default: break
        }
        if case .array(let values)? = object["enum"] { node.enumeration = values }
        if case .number(let number)? = object["minimum"] { node.minimum = number }
        if case .number(let number)? = object["maximum"] { node.maximum = number }
        if case .number(let number)? = object["minLength"] { node.minLength = Int(number) }
        if case .number(let number)? = object["maxLength"] { node.maxLength = Int(number) }
        if case .string(let pattern)? = object["pattern"] {
            do { node.pattern = try RegexPattern(pattern) } catch { throw Invalid(description: "\(path)/pattern: invalid regular expression: \(error)") }
        }
        if let items = object["items"] { node.items = try compile(items, at: "\(path)/items") }
        return .schema(node)
    }

    /// The first violation, as `$.path: what is wrong`, or nil when the value conforms.
    public func violation(of value: JSONValue, at path: String = "$") -> String? {
        guard case .schema(let node) = self else { return nil }
        if let types = node.types, !types.contains(where: { Self.value(value, isOfType: $0) }) {
            return "\(path): expected \(types.joined(separator: " or ")), found \(Self.typeName(of: value))"
        }
        if let allowed = node.enumeration, !allowed.contains(value) {
            return "\(path): must be one of \(allowed.map(Self.describe).joined(separator: ", "))"
        }
        switch value {
        case .number(let number):
            if let minimum = node.minimum, number < minimum { return "\(path): must be at least \(Self.describe(.number(minimum)))" }
            if let maximum = node.maximum, number > maximum { return "\(path): must be at most \(Self.describe(.number(maximum)))" }
        case .string(let text):
            if let minLength = node.minLength, text.count < minLength { return "\(path): must be at least \(minLength) characters long" }
            if let maxLength = node.maxLength, text.count > maxLength { return "\(path): must be at most \(maxLength) characters long" }
            // JSON Schema patterns are not anchored: the expression may match anywhere.
            if let pattern = node.pattern, !pattern.containsMatch(text) {
                return "\(path): does not match \(pattern.source)"
            }
        case .object(let object):
            for name in node.required where object[name] == nil { return "\(path).\(name): is required" }
            for name in object.keys.sorted() {
                let child = "\(path).\(name)"
                if let schema = node.properties[name] {
                    if let problem = schema.violation(of: object[name]!, at: child) { return problem }
                } else {
                    switch node.additionalProperties {
                    case .allowed: break
                    case .forbidden: return "\(child): is not allowed"
                    case .schema(let schema): if let problem = schema.violation(of: object[name]!, at: child) { return problem }
                    }
                }
            }
        case .array(let items):
            if let schema = node.items {
                for (index, item) in items.enumerated() {
                    if let problem = schema.violation(of: item, at: "\(path)[\(index)]") { return problem }
                }
            }
        case .bool, .null:
            break
        }
        return nil
    }

    static func value(_ value: JSONValue, isOfType type: String) -> Bool {
        switch (type, value) {
        case ("string", .string), ("number", .number), ("boolean", .bool), ("object", .object), ("array", .array), ("null", .null):
            return true
        case ("integer", .number(let number)):
            return number == number.rounded()
        default:
            return false
        }
    }

    static func typeName(of value: JSONValue) -> String {
        switch value {
        case .string: return "string"
        case .number(let number): return number == number.rounded() ? "integer" : "number"
        case .bool: return "boolean"
        case .object: return "object"
        case .array: return "array"
        case .null: return "null"
        }
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return "\"\(text)\""
        case .number(let number): return number == number.rounded() ? String(Int(number)) : String(number)
        default: return value.headerValue ?? "\(value)"
        }
    }
}
