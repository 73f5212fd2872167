import GantryCore

/// `gateway.policies[i]`: a named gateway policy that routes list in `policies`. Exactly one
/// kind per entry.
public struct PolicySpec: Decodable, Sendable {
    public var name: String?
    public var jwt: JWTPolicySpec?
    public var rateLimit: RateLimitSpec?
    public var apiKey: APIKeySpec?
    public var acl: ACLSpec?
    public var ipFilter: IPFilterSpec?
    public var cors: CORSSpec?
    public var validate: ValidateSpec?
    public var transform: TransformSpec?
    public var redirect: RedirectSpec?
    public var respond: RespondSpec?
    public var oauth2: OAuth2Spec?
}

/// `oauth2:` opaque OAuth 2.0 access tokens, checked with the issuer's RFC 7662 introspection
/// endpoint; answers are cached for the token's remaining life (at most `cacheTTL`).
public struct OAuth2Spec: Decodable, Sendable {
    /// `{service: auth-service, path: /auth/introspect}` or `{url: http://…}`.
    public var introspection: JWKSSourceSpec?
    /// Gantry's own client credentials at the introspection endpoint (HTTP Basic).
    public var clientId: String?
    public var clientSecret: String?
    public var clientSecretFile: String?
    /// Scopes the token must carry; missing ones answer 403 `insufficient_scope`.
    public var requiredScopes: [String]?
    /// Default 5m.
    public var cacheTTL: DurationSpec?
    /// Fields of the introspection answer to forward, e.g. `[{claim: client_id, header: X-Client-ID}]`.
    public var forwardClaims: [ClaimHeaderSpec]?
}

/// `redirect:` answers with a redirect; the route's service is not called.
public struct RedirectSpec: Decodable, Sendable {
    /// Where to; `${path}` and `${query}` (with its `?`) stand for the request's.
    public var location: String?
    /// 301, 302, 303, 307 or 308 (default).
    public var status: Int?
}

/// `respond:` answers with a fixed response; the route's service is not called.
public struct RespondSpec: Decodable, Sendable {
    /// Default 200.
    public var status: Int?
    public var body: String?
    /// Default `text/plain; charset=utf-8`.
    public var contentType: String?
}

/// `apiKey:` consumers identified by a key; the consumer's name goes upstream.
public struct APIKeySpec: Decodable, Sendable {
    /// Where the key is: `{header: X-API-Key}` (default) or `{query: api_key}`.
    public var from: TokenSourceSpec?
    public var consumers: [ConsumerSpec]?
    /// Header carrying the consumer's name upstream. Default `X-Consumer`.
    public var forwardAs: String?
}

public struct ConsumerSpec: Decodable, Sendable {
    public var name: String?
    public var groups: [String]?
    /// SHA-256 digests of the consumer's keys, in hex: `printf %s KEY | sha256sum`.
    public var keySHA256: [String]?
}

/// `acl:` allows or denies consumer groups (after an apiKey policy).
public struct ACLSpec: Decodable, Sendable {
    public var allow: [String]?
    public var deny: [String]?
}

/// `ipFilter:` client addresses by CIDR; deny wins over allow; with an allow list, others are refused.
public struct IPFilterSpec: Decodable, Sendable {
    public var allow: [String]?
    public var deny: [String]?
}

/// `cors:` cross-origin requests from browsers; preflights are answered by the gateway.
public struct CORSSpec: Decodable, Sendable {
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

/// `validate:` what a request must look like; anything else is answered 400 (413 for size).
public struct ValidateSpec: Decodable, Sendable {
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

/// `transform:` changes on the way upstream and back.
public struct TransformSpec: Decodable, Sendable {
    /// Removed from the start of the path: `/api` turns `/api/users` into `/users`.
    public var stripPrefix: String?
    /// `{regex: "^/v1/(.*)$", replacement: "/$1"}` on the path.
    public var rewrite: RewriteSpec?
    public var requestHeaders: HeaderEditsSpec?
    public var responseHeaders: HeaderEditsSpec?
}

public struct RewriteSpec: Decodable, Sendable {
    public var regex: String?
    public var replacement: String?
}

public struct HeaderEditsSpec: Decodable, Sendable {
    public var add: [ClaimHeaderValueSpec]?
    public var set: [ClaimHeaderValueSpec]?
    public var remove: [String]?
}

public struct ClaimHeaderValueSpec: Decodable, Sendable {
    public var name: String?
    public var value: String?
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
    /// Shared by several gantry instances through Redis: `{redis: 127.0.0.1:6379}`.
    public var store: RateLimitStoreSpec?
}

public struct RateLimitStoreSpec: Decodable, Sendable {
    public var redis: String?
    /// When the store cannot answer: `allow` (fail open, default) or `deny` (fail closed: 503).
    public var onFailure: String?
    /// Default 100ms.
    public var timeout: DurationSpec?
}

public struct RateLimitKeySpec: Decodable, Sendable {
    public var clientIP: Bool?
    public var header: String?
    public var claim: String?
    public var route: Bool?
    /// The consumer an apiKey policy identified.
    public var consumer: Bool?
}
