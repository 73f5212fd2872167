import Foundation

/// Every check a token goes through, by name, with what each found: the explanation
/// `gantry jwt check` prints. Made by the verifier's own steps (``JWTVerifier``), so it says
/// what the proxy would decide, and, where the proxy stops at the first failure, goes on to
/// show the rest.
public struct JWTReport: Sendable {
    public struct Check: Sendable, Equatable {
        /// `format`, `alg`, `crit`, `kid`, `signature`, or a claim's name.
        public let name: String
        public let failure: JWTFailure?
        /// What was found, e.g. `ES256` or `k1`, or the claim's value.
        public let detail: String
        public var passed: Bool { failure == nil }
    }

    public private(set) var checks: [Check] = []
    public private(set) var header: [String: JSONValue]?
    public private(set) var claims: [String: JSONValue]?

    /// The first failure, the one the proxy answers with; nil when the token is accepted.
    public var failure: JWTFailure? { checks.lazy.compactMap(\.failure).first }
    public var accepted: Bool { !checks.isEmpty && failure == nil }

    private mutating func add(_ name: String, _ failure: JWTFailure?, _ detail: String) {
        checks.append(Check(name: name, failure: failure, detail: detail))
    }

    public init(_ token: some StringProtocol, keys: [JWTKey], rules: JWTRules, now: Date) {
        let decoded: JWTVerifier.Decoded
        switch JWTVerifier.decode(token) {
        case .failure(let failure):
            add(failure == .malformed ? "format" : "crit", failure, failure == .malformed ? "not three base64url parts with a JSON header" : "")
            return
        case .success(let value):
            decoded = value
        }
        header = decoded.header
        add("format", nil, "three base64url parts")
        switch JWTVerifier.candidates(for: decoded, in: keys) {
        case .failure(let failure):
            if case .unknownKey = failure {
                add("alg", nil, decoded.algorithm)
                add("kid", failure, decoded.kid ?? "(none)")
            } else {
                add("alg", failure, decoded.algorithm)
            }
        case .success(let found):
            add("alg", nil, decoded.algorithm)
            add("kid", nil, decoded.kid ?? "(none: \(found.keys.count) key(s) tried)")
            let verifier = found.keys.first { $0.verifies(decoded.signature, of: decoded.signingInput, with: found.algorithm) }
            add("signature", verifier == nil ? .badSignature : nil, verifier.map { "verified by key \($0.id ?? "without kid")" } ?? "")
        }
        guard let claims = try? JSONDecoder().decode([String: JSONValue].self, from: decoded.payload) else {
            add("payload", .malformed, "not a JSON object")
            return
        }
        self.claims = claims
        for (claim, failure) in JWTVerifier.claimChecks(claims, rules: rules, now: now) {
            add(claim, failure, claims[claim]?.headerValue ?? "(absent)")
        }
    }
}
