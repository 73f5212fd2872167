import Foundation
import GantryCore
import NIOHTTP1

/// `validate:` what a request must look like: its method, headers, query parameters, content
/// type, body size and a JSON Schema for its body. Anything else is answered 400 (405, 413 or
/// 415 where HTTP has a code for it); a body with a schema is read in full and checked before
/// it goes upstream.
public struct ValidatePolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        public var methods: [String]?
        public var requiredHeaders: [String]?
        public var requiredQuery: [String]?
        /// e.g. `[application/json]`; parameters such as `; charset=utf-8` are ignored.
        public var contentTypes: [String]?
        /// Enforced from Content-Length and while a chunked body streams. Default with a schema: 1MiB.
        public var maxBodySize: ByteSize?
        /// The JSON body must conform to this JSON Schema (a subset: type, required, properties,
        /// additionalProperties, enum, minimum/maximum, minLength/maxLength, pattern, items),
        /// given inline as JSON text or in a file. The body is read in full before it goes upstream.
        public var jsonSchema: String?
        public var jsonSchemaFile: String?
    }

    public static let kind = "validate"

    public let methods: [String]
    /// Lowercased.
    public let requiredHeaders: [String]
    public let requiredQuery: [String]
    /// Lowercased media types.
    public let contentTypes: [String]
    public let maxBodySize: Int?
    public let jsonSchema: JSONSchema?

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> ValidatePolicy? {
        var schema: JSONSchema?
        var text = spec.jsonSchema
        let key: PathComponent = spec.jsonSchemaFile == nil ? "jsonSchema" : "jsonSchemaFile"
        if let file = spec.jsonSchemaFile { text = compilation.read(file, at: [key]) }
        if let text {
            do { schema = try JSONSchema(json: Data(text.utf8)) } catch { compilation.problem(at: [key], "\(error)") }
        }
        guard !compilation.hasProblems else { return nil }
        return ValidatePolicy(
            methods: (spec.methods ?? []).map { $0.uppercased() }, requiredHeaders: (spec.requiredHeaders ?? []).map { $0.lowercased() },
            requiredQuery: spec.requiredQuery ?? [], contentTypes: (spec.contentTypes ?? []).map { $0.lowercased() },
            maxBodySize: spec.maxBodySize?.bytes ?? (schema == nil ? nil : 1 << 20), jsonSchema: schema)
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        let head = request.original
        if !methods.isEmpty, !methods.contains(head.method.rawValue) {
            return .respond(
                LocalResponse(
                    .methodNotAllowed, message: "\(head.method.rawValue) is not allowed here", extraHeaders: [("allow", methods.joined(separator: ", "))]))
        }
        for name in requiredHeaders where head.headers.first(name: name) == nil {
            return .respond(LocalResponse(.invalidRequest, message: "the \(name) header is required"))
        }
        if !requiredQuery.isEmpty {
            let names = Set(request.target.parameters.map(\.name))
            for name in requiredQuery where !names.contains(Substring(name)) {
                return .respond(LocalResponse(.invalidRequest, message: "the query parameter \(name) is required"))
            }
        }
        let length = head.headers.first(name: "content-length").flatMap(Int.init)
        let hasBody = (length ?? 0) > 0 || head.headers.contains(name: "transfer-encoding")
        if !contentTypes.isEmpty, hasBody {
            let type = (head.headers.first(name: "content-type") ?? "").split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            if !contentTypes.contains(type) {
                return .respond(
                    LocalResponse(
                        .unsupportedMediaType,
                        message: "content type \(type.isEmpty ? "(none)" : type) is not one of \(contentTypes.joined(separator: ", "))"))
            }
        }
        if let maxBodySize {
            if let length, length > maxBodySize {
                return .respond(LocalResponse(.payloadTooLarge, message: "the body is larger than \(maxBodySize) bytes", closesConnection: true))
            }
            request.maxBodySize = min(request.maxBodySize ?? maxBodySize, maxBodySize)
        }
        if let jsonSchema { request.bodySchema = jsonSchema }
        return .proceed
    }
}
