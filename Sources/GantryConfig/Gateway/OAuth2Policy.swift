import Foundation
import GantryCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// `oauth2:` opaque OAuth 2.0 access tokens, checked with the issuer's token introspection
/// endpoint (RFC 7662). Answers are cached for the token's remaining life, at most `cacheTTL`;
/// inactive answers for a few seconds, to blunt token-guessing floods. A request whose token is
/// not in the cache waits for the endpoint's answer.
public struct OAuth2Policy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// `{service: auth-service, path: /auth/introspect}` or `{url: http://…}`.
        public var introspection: RemoteSourceSpec?
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

    public static let kind = "oauth2"
    public static let establishes: CallerFacts = .claims

    public let source: RemoteSource
    public let clientId: String?
    public let clientSecret: String?
    public let requiredScopes: [String]
    public let cacheTTL: Duration
    public let forwardClaims: [(claim: String, header: String)]

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> OAuth2Policy? {
        guard let sourceSpec = spec.introspection else {
            compilation.problem(at: ["introspection"], "missing required key \"introspection\": {service: NAME, path: /…} or {url: http://…}")
            return nil
        }
        let source = RemoteSource.compile(sourceSpec, defaultPath: "/introspect", in: &compilation, at: "introspection")
        var secret = spec.clientSecret
        if let file = spec.clientSecretFile {
            secret = compilation.read(file, at: ["clientSecretFile"])?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if (spec.clientId == nil) != (secret == nil) { compilation.problem("set clientId and clientSecret together") }
        let forward = compilation.claimHeaders(spec.forwardClaims, example: "{claim: client_id, header: X-Client-ID}", at: ["forwardClaims"])
        let ttl = compilation.positive(spec.cacheTTL, default: .seconds(300), at: ["cacheTTL"])
        guard !compilation.hasProblems, let source else { return nil }
        return OAuth2Policy(
            source: source, clientId: spec.clientId, clientSecret: secret, requiredScopes: spec.requiredScopes ?? [], cacheTTL: ttl,
            forwardClaims: forward)
    }

    public func makeSharedState() -> IntrospectionCache { IntrospectionCache() }

    public func evaluate(_ request: inout PolicyRequest, shared: IntrospectionCache, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        for (_, header) in forwardClaims { request.upstream.headers.remove(name: header) }
        guard let token = TokenSource.bearer.token(in: request.original) else { return .respond(JWTPolicy.unauthorized(.missing)) }
        let key = APIKeys.digest(of: token)
        if let entry = shared.lookup(key, now: request.monotonic) {
            return apply(entry.claims, to: &request)
        }
        guard let target = source.target(in: environment) else { return .respond(Self.unavailable) }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let form = "token=\(token.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")&token_type_hint=access_token"
        var headers = [("content-type", "application/x-www-form-urlencoded")]
        if let clientId, let clientSecret {
            headers.append(("authorization", "Basic " + Data("\(clientId):\(clientSecret)".utf8).base64EncodedString()))
        }
        let answer = environment.send(
            OutgoingRequest(method: .POST, to: target, headers: headers, body: Data(form.utf8)))
        let policy = self
        return .wait(
            answer.hop(to: environment.eventLoop).map { answer in
                PolicyResumption { request in policy.introspected(answer, key: key, cache: shared, request: &request) }
            }.recover { _ in .decided(.respond(Self.unavailable)) })
    }

    private func introspected(_ answer: OutgoingResponse, key: String, cache: IntrospectionCache, request: inout PolicyRequest) -> PolicyVerdict {
        guard answer.status == 200, let claims = try? JSONDecoder().decode([String: JSONValue].self, from: answer.body) else {
            return .respond(Self.unavailable)
        }
        let active = claims["active"] == .bool(true)
        var ttl = Double(cacheTTL.components.seconds)
        if active, case .number(let exp)? = claims["exp"] { ttl = min(ttl, exp - request.now.timeIntervalSince1970) }
        if !active { ttl = min(ttl, 10) }
        if ttl > 0 {
            cache.store(key, IntrospectionCache.Entry(claims: active ? claims : nil, expires: request.monotonic + UInt64(ttl * 1e9)), now: request.monotonic)
        }
        return apply(active ? claims : nil, to: &request)
    }

    /// An introspection answer applied to a request: inactive → 401; missing scopes → 403
    /// `insufficient_scope` (RFC 6750 §3.1); else the chosen fields go upstream.
    func apply(_ claims: [String: JSONValue]?, to request: inout PolicyRequest) -> PolicyVerdict {
        guard let claims, claims["active"] == .bool(true) else {
            return .respond(
                LocalResponse(
                    .unauthorized, message: "the token is not active",
                    extraHeaders: [("www-authenticate", #"Bearer realm="gantry", error="invalid_token", error_description="the token is not active""#)]
                ))
        }
        let granted = Set((claims["scope"]?.headerValue ?? "").split(separator: " ").map(String.init))
        let missing = requiredScopes.filter { !granted.contains($0) }
        if !missing.isEmpty {
            return .respond(
                LocalResponse(
                    .insufficientScope, message: "the token lacks scope \(missing.joined(separator: " "))",
                    extraHeaders: [
                        ("www-authenticate", #"Bearer realm="gantry", error="insufficient_scope", scope="\#(requiredScopes.joined(separator: " "))""#)
                    ]))
        }
        request.caller.claims = claims
        for (claim, header) in forwardClaims {
            if let value = claims[claim]?.headerValue { request.upstream.headers.add(name: header, value: value) }
        }
        return .proceed
    }

    static let unavailable = LocalResponse(.introspectionUnavailable, message: "the token could not be checked")
}

/// Introspection answers by token digest. Bounded in size.
public final class IntrospectionCache: Sendable {
    public struct Entry: Sendable {
        /// nil: the token is not active.
        public let claims: [String: JSONValue]?
        /// Monotonic nanoseconds.
        public let expires: UInt64
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    static let capacity = 100_000

    public init() {}

    public func lookup(_ key: String, now: UInt64) -> Entry? {
        entries.withLockedValue { entries in
            guard let entry = entries[key] else { return nil }
            if entry.expires <= now {
                entries[key] = nil
                return nil
            }
            return entry
        }
    }

    public func store(_ key: String, _ entry: Entry, now: UInt64) {
        entries.withLockedValue { entries in
            if entries.count >= Self.capacity {
                entries = entries.filter { $0.value.expires > now }
                if entries.count >= Self.capacity { entries.removeAll() }
            }
            entries[key] = entry
        }
    }
}
