import GantryCore

/// `gateway.policies[i]`: a named gateway policy that routes list in `policies`. Exactly one
/// kind per entry.
public struct PolicySpec: Decodable, Sendable {
    public var name: String?
    public var jwt: JWTPolicySpec?
    public var rateLimit: RateLimitSpec?
}

/// `jwt:` checks a JSON Web Token and forwards chosen claims upstream.
public struct JWTPolicySpec: Decodable, Sendable {
    /// Where the verification keys come from: `{service: auth-service, path: /…/jwks.json}`
    /// (a service inside gantry) or `{url: http://…}`.
    public var jwks: JWKSSourceSpec?
    /// Static keys: `[{pemFile: key.pem, kid: k1}]` or `[{jwksFile: keys.json}]`.
    public var keys: [StaticKeySpec]?
    public var issuer: String?
    public var audiences: [String]?
    /// Default 60s.
    public var leeway: DurationSpec?
    public var requiredClaims: [String]?
    /// `[{claim: sub, header: X-User-ID}]`; client-sent copies of these headers are removed.
    public var forwardClaims: [ClaimHeaderSpec]?
    /// Where the token is: `Authorization: Bearer` by default, or `{header: X-Token}`,
    /// `{cookie: session}`, `{query: access_token}`.
    public var from: TokenSourceSpec?
}

public struct JWKSSourceSpec: Decodable, Sendable {
    public var url: String?
    public var service: String?
    public var path: String?
    /// Default 5m.
    public var refreshInterval: DurationSpec?
    /// The least time between two fetches caused by a token with an unknown `kid`. Default 30s.
    public var minRefetchInterval: DurationSpec?
}

public struct StaticKeySpec: Decodable, Sendable {
    public var pemFile: String?
    public var jwksFile: String?
    public var kid: String?
}

public struct ClaimHeaderSpec: Decodable, Sendable {
    public var claim: String?
    public var header: String?
}

public struct TokenSourceSpec: Decodable, Sendable {
    public var header: String?
    public var cookie: String?
    public var query: String?
}

/// `rateLimit:` a token bucket per key: `requests` per `per`, up to `burst` at once.
public struct RateLimitSpec: Decodable, Sendable {
    public var requests: Int?
    public var per: DurationSpec?
    /// Default: `requests`.
    public var burst: Int?
    /// What is limited: `{clientIP: true}` (default), `{header: X-API-Key}`, `{claim: sub}`
    /// (after a jwt policy), `{route: true}` (one bucket for the route).
    public var key: RateLimitKeySpec?
}

public struct RateLimitKeySpec: Decodable, Sendable {
    public var clientIP: Bool?
    public var header: String?
    public var claim: String?
    public var route: Bool?
}
