import Foundation
import Testing

@testable import GantryCore

struct JSONSchemaTests {
    static let schema = try! JSONSchema(
        json: Data(
            """
            {"type": "object", "required": ["name", "age"], "additionalProperties": {"type": "string"},
             "properties": {
               "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
               "age": {"type": "integer", "minimum": 0, "maximum": 150},
               "email": {"type": ["string", "null"], "pattern": "@"},
               "role": {"enum": ["admin", "user", 7]},
               "tags": {"type": "array", "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "boolean"}}}}
             }}
            """.utf8))

    @Test(arguments: [
        (#"{"name": "ada", "age": 36}"#, nil),
        (#"{"name": "ada", "age": 36, "email": null, "role": 7, "extra": "ok", "tags": [{"k": true}]}"#, nil),
        (#"{"age": 36}"#, "$.name: is required"),
        (#"{"name": "a", "age": 36}"#, "$.name: must be at least 2 characters long"),
        (#"{"name": "adelaide", "age": 36}"#, "$.name: must be at most 5 characters long"),
        (#"{"name": "Ada", "age": 36}"#, "$.name: does not match ^[a-z]+$"),
        (#"{"name": "ada", "age": 36.5}"#, "$.age: expected integer, found number"),
        (#"{"name": "ada", "age": -1}"#, "$.age: must be at least 0"),
        (#"{"name": "ada", "age": 151}"#, "$.age: must be at most 150"),
        (#"{"name": "ada", "age": 1, "email": "nope"}"#, "$.email: does not match @"),
        (#"{"name": "ada", "age": 1, "email": 3}"#, "$.email: expected string or null, found integer"),
        (#"{"name": "ada", "age": 1, "role": "root"}"#, #"$.role: must be one of "admin", "user", 7"#),
        (#"{"name": "ada", "age": 1, "extra": 1}"#, "$.extra: expected string, found integer"),
        (#"{"name": "ada", "age": 1, "tags": [{"k": true}, {}]}"#, "$.tags[1].k: is required"),
        (#"{"name": "ada", "age": 1, "tags": [{"k": "yes"}]}"#, "$.tags[0].k: expected boolean, found string"),
        ("[]", "$: expected object, found array"),
    ] as [(String, String?)])
    func validation(body: String, problem: String?) throws {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(body.utf8))
        #expect(Self.schema.violation(of: value) == problem)
    }

    @Test(arguments: [
        (#"{"type": "object", "oneOf": []}"#, "#: oneOf is not supported"),
        (#"{"type": "thing"}"#, "#/type: unknown type thing"),
        (#"{"properties": {"a": {"pattern": "("}}}"#, "#/properties/a/pattern: invalid regular expression"),
        ("[1]", "#: a schema must be an object"),
    ])
    func schemaMistakes(schema: String, message: String) {
        do {
            _ = try JSONSchema(json: Data(schema.utf8))
            Issue.record("accepted \(schema)")
        } catch {
            #expect("\(error)".hasPrefix(message), "\(error)")
        }
    }
}
