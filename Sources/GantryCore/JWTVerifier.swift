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
public enum JWTVerifier {
    struct Header: Decodable {
        let alg: String
        let kid: String?
    }

    public static func verify(
        _ token: some StringProtocol, keys: [JWTKey], rules: JWTRules, now: Date
    ) -> Result<[String: JSONValue], JWTFailure> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Base64URL.decode(parts[0]), let payloadData = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]), let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { return .failure(.malformed) }
        guard let algorithm = JWTAlgorithm(rawValue: header.alg) else { return .failure(.algorithmNotAllowed(header.alg)) }

        // With a kid, only that key; without one, any key that accepts the algorithm.
        let candidates = keys.filter { ($0.id == nil || header.kid == nil || $0.id == header.kid) && $0.algorithms.contains(algorithm) }
        guard !candidates.isEmpty else {
            return .failure(keys.contains { $0.id == header.kid } ? .algorithmNotAllowed(header.alg) : .unknownKey(header.kid))
        }
        let input = Data(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard candidates.contains(where: { $0.verifies(signature, of: input, with: algorithm) }) else {
            return .failure(.badSignature)
        }
        guard let claims = try? JSONDecoder().decode([String: JSONValue].self, from: payloadData) else { return .failure(.malformed) }
        if let failure = check(claims, rules: rules, now: now) { return .failure(failure) }
        return .success(claims)
    }

    static func check(_ claims: [String: JSONValue], rules: JWTRules, now: Date) -> JWTFailure? {
        let leeway = Double(rules.leeway.components.seconds)
        let time = now.timeIntervalSince1970
        if let exp = claims["exp"] {
            guard case .number(let value) = exp else { return .malformed }
            if time >= value + leeway { return .expired }
        }
        if let nbf = claims["nbf"] {
            guard case .number(let value) = nbf else { return .malformed }
            if time + leeway < value { return .notYetValid }
        }
        if let iat = claims["iat"] {
            guard case .number(let value) = iat else { return .malformed }
            if time + leeway < value { return .issuedInTheFuture }
        }
        if let issuer = rules.issuer, claims["iss"] != .string(issuer) { return .wrongIssuer }
        if !rules.audiences.isEmpty {
            let audiences: [String]
            switch claims["aud"] {
            case .string(let single)?: audiences = [single]
            case .array(let list)?: audiences = list.compactMap { if case .string(let text) = $0 { text } else { nil } }
            default: audiences = []
            }
            if !audiences.contains(where: rules.audiences.contains) { return .wrongAudience }
        }
        for name in rules.requiredClaims where claims[name] == nil { return .missingClaim(name) }
        return nil
    }
}
