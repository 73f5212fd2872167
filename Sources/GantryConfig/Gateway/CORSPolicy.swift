import GantryCore

/// `cors:` cross-origin requests from browsers (the Fetch standard's CORS protocol): preflights
/// are answered by the gateway; actual requests from allowed origins get the response fields.
public struct CORSPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// Exact origins, or `["*"]`.
        public var origins: [String]?
        /// Default `[GET, HEAD, POST]`.
        public var methods: [String]?
        /// Request headers allowed in preflights. Default: none beyond the CORS-safelisted ones.
        public var headers: [String]?
        public var exposedHeaders: [String]?
        /// Default false.
        public var credentials: Bool?
        /// Seconds a browser may cache a preflight. Default 600.
        public var maxAge: Int?
    }

    public static let kind = "cors"

    public let rules: CORSRules

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> CORSPolicy? {
        let origins = spec.origins ?? []
        if origins.isEmpty {
            compilation.problem(at: ["origins"], "list the allowed origins, e.g. [https://app.example.com], or [\"*\"]")
            return nil
        }
        return CORSPolicy(
            rules: CORSRules(
                origins: origins, methods: spec.methods ?? ["GET", "HEAD", "POST"], headers: spec.headers ?? [],
                exposedHeaders: spec.exposedHeaders ?? [], credentials: spec.credentials ?? false, maxAge: spec.maxAge ?? 600))
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        let original = request.original
        let outcome = rules.evaluate(
            method: original.method.rawValue, origin: original.headers.first(name: "origin"),
            requestMethod: original.headers.first(name: "access-control-request-method"),
            requestHeaders: original.headers[canonicalForm: "access-control-request-headers"].joined(separator: ","))
        switch outcome {
        case .notCORS:
            return .proceed
        case .preflight(let allowed, let headers):
            return .respond(
                allowed
                    ? LocalResponse(.corsPreflight, message: "", extraHeaders: headers)
                    : LocalResponse(.corsRefused, message: "cross-origin request not allowed", extraHeaders: headers))
        case .actual(let headers):
            request.responseEdits.add += headers
            return .proceed
        }
    }
}
