import Foundation

/// What a token must satisfy, besides a valid signature.
public struct JWTRules: Sendable {
    /// `iss` must equal this, when set.
    public var issuer: String?
    /// `aud` (a string or a list) must contain one of these, when not empty.
    public var audiences: [String]
    /// Allowed clock difference for `exp`, `nbf` and `iat`.
    public var leeway: Duration
    /// Claims that must be present.
    public var requiredClaims: [String]

    public init(issuer: String? = nil, audiences: [String] = [], leeway: Duration = .seconds(60), requiredClaims: [String] = []) {
        self.issuer = issuer
        self.audiences = audiences
        self.leeway = leeway
        self.requiredClaims = requiredClaims
    }
}

/// Why a token was refused; the description goes into `WWW-Authenticate`'s
/// `error_description`.
public enum JWTFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case missing
    case malformed
    case algorithmNotAllowed(String)
    /// The header's `crit` (RFC 7515 §4.1.11) is not one gantry can honour; the text says why.
    case critical(String)
    case unknownKey(String?)
    case badSignature
    case expired
    case notYetValid
    case issuedInTheFuture
    case wrongIssuer
    case wrongAudience
    case missingClaim(String)

    public var description: String {
        switch self {
        case .missing: return "no token"
        case .malformed: return "the token is not a well-formed JWT"
        case .algorithmNotAllowed(let alg): return "algorithm \(alg) is not accepted"
        case .critical(let why): return "the token's crit header is refused: \(why)"
        case .unknownKey(let kid): return kid.map { "no key with kid \($0)" } ?? "no key verifies the token"
        case .badSignature: return "the signature does not verify"
        case .expired: return "the token has expired"
        case .notYetValid: return "the token is not valid yet"
        case .issuedInTheFuture: return "the token was issued in the future"
        case .wrongIssuer: return "the token's issuer is not accepted"
        case .wrongAudience: return "the token is not meant for this audience"
        case .missingClaim(let name): return "the token lacks the \(name) claim"
        }
    }
}

/// Checks a compact JWS (RFC 7515, 7519) against keys and rules. Pure and synchronous: keys
/// are a parameter (the control plane fetches and refreshes them), and so is the time.
///
/// Written here rather than with jwt-kit: the proxy verifies on its event loops, with its own
/// key sets and cache, and reports each check by name (``explain(_:keys:rules:now:)``, for
/// `gantry jwt check`), which jwt-kit's all-in-one `verify` does not.
public enum JWTVerifier {
    /// A token split and its header read, before any key is involved.
    struct Decoded {
        let header: [String: JSONValue]
        let algorithm: String
        let kid: String?
        let signingInput: Data
        let payload: Data
        let signature: Data
    }

    /// Header parameters RFC 7515 §4.1 and RFC 7518 §4.1 define: `crit` may not list them.
    static let registeredHeaderNames: Set<String> = [
        "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit",
        "enc", "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
    ]
    /// Extension header parameters gantry understands and implements, which `crit` may list.
    /// None yet: RFC 7797's `b64: false` changes what is signed and is not supported.
    static let understoodExtensions: Set<String> = []

    public static func verify(
        _ token: some StringProtocol, keys: [JWTKey], rules: JWTRules, now: Date
    ) -> Result<[String: JSONValue], JWTFailure> {
        let decoded: Decoded
        switch decode(token) {
        case .success(let value): decoded = value
        case .failure(let failure): return .failure(failure)
        }
        let algorithm: JWTAlgorithm
        switch candidates(for: decoded, in: keys) {
        case .success(let found):
            algorithm = found.algorithm
            guard found.keys.contains(where: { $0.verifies(decoded.signature, of: decoded.signingInput, with: algorithm) }) else {
                return .failure(.badSignature)
            }
        case .failure(let failure): return .failure(failure)
        }
        guard let claims = try? JSONDecoder().decode([String: JSONValue].self, from: decoded.payload) else { return .failure(.malformed) }
        if let failure = check(claims, rules: rules, now: now) { return .failure(failure) }
        return .success(claims)
    }

    /// The three parts, each canonical base64url, the header a JSON object with a string `alg`,
    /// an optional string `kid` and an acceptable `crit`.
    static func decode(_ token: some StringProtocol) -> Result<Decoded, JWTFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Base64URL.decode(parts[0]), let payload = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]), let header = try? JSONDecoder().decode([String: JSONValue].self, from: headerData),
            case .string(let alg)? = header["alg"]
        else { return .failure(.malformed) }
        var kid: String?
        switch header["kid"] {
        case nil: break
        case .string(let text)?: kid = text
        default: return .failure(.malformed)
        }
        if let crit = header["crit"], let why = refusal(ofCrit: crit, in: header) { return .failure(.critical(why)) }
        let input = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        return .success(Decoded(header: header, algorithm: alg, kid: kid, signingInput: input, payload: payload, signature: signature))
    }

    /// Why `crit` makes the token invalid, or nil when gantry honours every name it lists
    /// (RFC 7515 §4.1.11): it must be a non-empty array of strings, none of them a registered
    /// header name, each present in the header and understood here.
    static func refusal(ofCrit crit: JSONValue, in header: [String: JSONValue]) -> String? {
        guard case .array(let items) = crit else { return "crit must be an array of header names" }
        guard !items.isEmpty else { return "crit must not be empty" }
        var names: [String] = []
        for item in items {
            guard case .string(let name) = item else { return "crit must list header names as strings" }
            guard !names.contains(name) else { return "crit lists \(name) twice" }
            names.append(name)
        }
        for name in names {
            if registeredHeaderNames.contains(name) { return "crit lists \(name), which the JWS specifications define" }
            if header[name] == nil { return "crit lists \(name), which the header does not have" }
            if !understoodExtensions.contains(name) { return "crit lists \(name), an extension gantry does not implement" }
        }
        return nil
    }

    /// The algorithm and the keys that may verify the token: with a kid, only that key; without
    /// one, any key that accepts the algorithm.
    static func candidates(for decoded: Decoded, in keys: [JWTKey]) -> Result<(algorithm: JWTAlgorithm, keys: [JWTKey]), JWTFailure> {
        guard let algorithm = JWTAlgorithm(rawValue: decoded.algorithm) else { return .failure(.algorithmNotAllowed(decoded.algorithm)) }
        let kid = decoded.kid
        let candidates = keys.filter { ($0.id == nil || kid == nil || $0.id == kid) && $0.algorithms.contains(algorithm) }
        guard !candidates.isEmpty else {
            return .failure(keys.contains { $0.id == kid } ? .algorithmNotAllowed(decoded.algorithm) : .unknownKey(kid))
        }
        return .success((algorithm, candidates))
    }

    static func check(_ claims: [String: JSONValue], rules: JWTRules, now: Date) -> JWTFailure? {
        claimChecks(claims, rules: rules, now: now).lazy.compactMap(\.failure).first
    }

    /// Each claim the rules look at, in order, with its failure if it has one.
    static func claimChecks(_ claims: [String: JSONValue], rules: JWTRules, now: Date) -> [(claim: String, failure: JWTFailure?)] {
        let leeway = Double(rules.leeway.components.seconds)
        let time = now.timeIntervalSince1970
        var checks: [(claim: String, failure: JWTFailure?)] = []
        func timeClaim(_ name: String, fails: (Double) -> Bool, _ failure: JWTFailure) {
            guard let value = claims[name] else { return }
            guard case .number(let seconds) = value else { return checks.append((name, .malformed)) }
            checks.append((name, fails(seconds) ? failure : nil))
        }
        timeClaim("exp", fails: { time >= $0 + leeway }, .expired)
        timeClaim("nbf", fails: { time + leeway < $0 }, .notYetValid)
        timeClaim("iat", fails: { time + leeway < $0 }, .issuedInTheFuture)
        if let issuer = rules.issuer { checks.append(("iss", claims["iss"] != .string(issuer) ? .wrongIssuer : nil)) }
        if !rules.audiences.isEmpty {
            let audiences: [String]
            switch claims["aud"] {
            case .string(let single)?: audiences = [single]
            case .array(let list)?: audiences = list.compactMap { if case .string(let text) = $0 { text } else { nil } }
            default: audiences = []
            }
            checks.append(("aud", audiences.contains(where: rules.audiences.contains) ? nil : .wrongAudience))
        }
        for name in rules.requiredClaims { checks.append((name, claims[name] == nil ? .missingClaim(name) : nil)) }
        return checks
    }
}
