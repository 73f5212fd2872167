/// Cross-origin resource sharing (the Fetch standard's CORS protocol) for a route: which
/// origins, methods and headers are allowed; preflights are answered by the gateway.
public struct CORSRules: Sendable, Hashable {
    /// Exact origins (`https://app.example.com`), or `*` for any.
    public let origins: [String]
    public let methods: [String]
    /// Lowercased request headers a preflight may ask for; `*` for any.
    public let headers: [String]
    public let exposedHeaders: [String]
    public let credentials: Bool
    public let maxAge: Int

    public init(origins: [String], methods: [String], headers: [String], exposedHeaders: [String], credentials: Bool, maxAge: Int) {
        self.origins = origins
        self.methods = methods.map { $0.uppercased() }
        self.headers = headers.map { $0.lowercased() }
        self.exposedHeaders = exposedHeaders
        self.credentials = credentials
        self.maxAge = maxAge
    }

    public enum Outcome: Sendable, Equatable {
        /// Not a cross-origin request (no Origin): nothing to do.
        case notCORS
        /// A preflight: answer it here with 204 and these headers (none when refused).
        case preflight(allowed: Bool, headers: [(String, String)])
        /// An actual request: forward it; add these headers to the response (none when the
        /// origin is not allowed, so the browser refuses to hand the response over).
        case actual(headers: [(String, String)])

        public static func == (lhs: Outcome, rhs: Outcome) -> Bool {
            switch (lhs, rhs) {
            case (.notCORS, .notCORS): return true
            case (.preflight(let a, let x), .preflight(let b, let y)): return a == b && x.map { "\($0):\($1)" } == y.map { "\($0):\($1)" }
            case (.actual(let x), .actual(let y)): return x.map { "\($0):\($1)" } == y.map { "\($0):\($1)" }
            default: return false
            }
        }
    }

    public func evaluate(method: String, origin: String?, requestMethod: String?, requestHeaders: String?) -> Outcome {
        guard let origin else { return .notCORS }
        let originAllowed = origins.contains("*") || origins.contains(origin)
        // With credentials, `*` may not be sent: echo the origin instead.
        let allowOrigin = origins.contains("*") && !credentials ? "*" : origin
        var common: [(String, String)] = [("access-control-allow-origin", allowOrigin)]
        if allowOrigin != "*" { common.append(("vary", "Origin")) }
        if credentials { common.append(("access-control-allow-credentials", "true")) }

        if method == "OPTIONS", let requested = requestMethod {
            let asked = (requestHeaders ?? "").split(separator: ",").map { $0.trimmingWhitespace().lowercased() }.filter { !$0.isEmpty }
            let methodAllowed = methods.contains(requested.uppercased())
            let headersAllowed = headers.contains("*") || asked.allSatisfy(headers.contains)
            guard originAllowed, methodAllowed, headersAllowed else { return .preflight(allowed: false, headers: []) }
            var result = common
            result.append(("access-control-allow-methods", methods.joined(separator: ", ")))
            if !asked.isEmpty { result.append(("access-control-allow-headers", asked.joined(separator: ", "))) }
            result.append(("access-control-max-age", String(maxAge)))
            return .preflight(allowed: true, headers: result)
        }
        guard originAllowed else { return .actual(headers: []) }
        var result = common
        if !exposedHeaders.isEmpty { result.append(("access-control-expose-headers", exposedHeaders.joined(separator: ", "))) }
        return .actual(headers: result)
    }
}
