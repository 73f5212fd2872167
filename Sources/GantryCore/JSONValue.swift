/// A JSON value, for claims whose shape gantry does not know in advance.
public enum JSONValue: Sendable, Hashable, Codable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let text): try container.encode(text)
        case .number(let number):
            // Whole numbers (times, counts) as integers, not 1.8e9.
            if number == number.rounded(), abs(number) < 1e15 { try container.encode(Int64(number)) } else { try container.encode(number) }
        case .bool(let flag): try container.encode(flag)
        case .array(let items): try container.encode(items)
        case .object(let members): try container.encode(members)
        case .null: try container.encodeNil()
        }
    }

    /// The value as a header would carry it: strings as they are, numbers and booleans
    /// written out, arrays of those joined with commas; nil for objects, null and strings with
    /// control bytes.
    public var headerValue: String? {
        switch self {
        // A field value may not hold CR, LF or other control bytes (RFC 9110 §5.5): such a
        // claim is not forwarded rather than letting it split the upstream request.
        case .string(let text): return text.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) } ? text : nil
        case .number(let number): return number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .array(let items):
            let parts = items.compactMap { item -> String? in
                if case .array = item { return nil }
                return item.headerValue
            }
            return parts.count == items.count ? parts.joined(separator: ",") : nil
        case .object, .null: return nil
        }
    }
}
