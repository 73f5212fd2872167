import Foundation
import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1

/// Runs a route's gateway policies on a request, in the route's order; any of them may answer
/// locally, and then the request never reaches an upstream. One per event loop: it holds the
/// loop's copy of the fetched JWT keys (published like endpoint sets, so verifying takes no
/// lock); rate limiters are shared by all loops through ``GatewayState``. The decisions
/// themselves are GantryCore's (JWT verification, token buckets, CIDR, CORS, rewrites).
final class PolicyEngine {
    /// Fetched keys by jwt policy index. New keys may change verdicts: forget cached ones.
    var fetchedKeys: [Int: [JWTKey]] = [:] {
        didSet { verifiedTokens.removeAll() }
    }
    /// Tokens that verified, by jwt policy index.
    private var verifiedTokens: [Int: VerifiedTokenCache] = [:]
    let shared: GatewayState

    init(shared: GatewayState) {
        self.shared = shared
    }

    struct Verdict {
        var reject: LocalResponse?
        /// Changes to the response the client gets (rate-limit and CORS headers, transforms).
        var response = HeaderEdits()
        /// From a validate policy: the most body the request may carry.
        var maxBodySize: Int?
        /// From a validate policy: the body must be JSON conforming to this.
        var bodySchema: JSONSchema?
        /// An oauth2 policy needs the introspection endpoint's answer: the exchange asks it,
        /// then runs `remaining`.
        var deferred: DeferredCheck?
    }

    struct DeferredCheck {
        enum Kind {
            /// An oauth2 policy asks the introspection endpoint about `token`.
            case introspection(token: String, cacheKey: String)
            /// A rate limit kept in a shared store takes a token for `key`.
            case sharedRateLimit(key: String)
        }

        let policy: Int
        let kind: Kind
        var remaining: [Int] = []
        var claims: [String: JSONValue] = [:]
    }

    /// What earlier policies learned about the request, for later ones.
    struct Identity {
        var claims: [String: JSONValue] = [:]
        var consumer: APIKeys.Consumer?
    }

    /// - Parameters:
    ///   - original: the request as the client sent it (credentials are read here).
    ///   - upstream: the head that goes upstream; policies change it.
    func apply(
        _ indices: [Int], policies: [GatewayPolicy], original: HTTPRequestHead, upstream: inout HTTPRequestHead, client: String,
        route: String, now: Date, monotonic: UInt64, claims: [String: JSONValue] = [:]
    ) -> Verdict {
        var verdict = Verdict()
        var identity = Identity(claims: claims)
        for (position, index) in indices.enumerated() {
            if let reject = apply(
                policies[index], index: index, original: original, upstream: &upstream, client: client, route: route, now: now,
                monotonic: monotonic, identity: &identity, verdict: &verdict)
            {
                var response = reject
                // Headers meant for the client (CORS) go on refusals too, so browsers can read them.
                response.extraHeaders += verdict.response.add
                verdict.reject = response
                return verdict
            }
            if verdict.deferred != nil {
                verdict.deferred!.remaining = Array(indices[(position + 1)...])
                verdict.deferred!.claims = identity.claims
                return verdict
            }
        }
        return verdict
    }

    private func apply(
        _ policy: GatewayPolicy, index: Int, original: HTTPRequestHead, upstream: inout HTTPRequestHead, client: String, route: String,
        now: Date, monotonic: UInt64, identity: inout Identity, verdict: inout Verdict
    ) -> LocalResponse? {
        switch policy {
        case .jwt(let jwt):
            for (_, header) in jwt.forwardClaims { upstream.headers.remove(name: header) }  // never trust a client's copy
            switch checkToken(jwt, index: index, original: original, now: now) {
            case .success(let claims):
                identity.claims = claims
                for (claim, header) in jwt.forwardClaims {
                    if let value = claims[claim]?.headerValue { upstream.headers.add(name: header, value: value) }
                }
                return nil
            case .failure(let failure):
                return Self.unauthorized(failure)
            }

        case .oauth2(let oauth):
            for (_, header) in oauth.forwardClaims { upstream.headers.remove(name: header) }
            guard let token = Self.token(from: original, source: .bearer) else { return Self.unauthorized(.missing) }
            let key = "\(index):\(APIKeys.digest(of: token))"
            if let entry = shared.introspections.lookup(key, now: monotonic) {
                return Self.evaluate(oauth, entry.claims, upstream: &upstream, identity: &identity)
            }
            verdict.deferred = DeferredCheck(policy: index, kind: .introspection(token: String(token), cacheKey: key))
            return nil

        case .apiKey(let apiKey):
            upstream.headers.remove(name: apiKey.forwardAs)
            guard let key = Self.token(from: original, source: apiKey.source) else {
                return LocalResponse(status: .unauthorized, reason: "unauthorized", message: "no API key")
            }
            guard let consumer = apiKey.keys.consumer(presenting: key) else {
                return LocalResponse(status: .unauthorized, reason: "unauthorized", message: "unknown API key")
            }
            identity.consumer = consumer
            upstream.headers.add(name: apiKey.forwardAs, value: consumer.name)
            if case .header(let name) = apiKey.source { upstream.headers.remove(name: name) }  // the key stays at the gateway
            return nil

        case .acl(let acl):
            let groups = identity.consumer?.groups ?? []
            let denied = groups.contains(where: acl.deny.contains)
            let allowed = acl.allow.isEmpty || groups.contains(where: acl.allow.contains)
            if denied || !allowed {
                return LocalResponse(status: .forbidden, reason: "forbidden", message: "consumer \(identity.consumer?.name ?? "-") may not use this route")
            }
            return nil

        case .ipFilter(let filter):
            if filter.admits(client) { return nil }
            return LocalResponse(status: .forbidden, reason: "forbidden", message: "client address \(client) is not allowed")

        case .cors(let rules):
            let outcome = rules.evaluate(
                method: original.method.rawValue, origin: original.headers.first(name: "origin"),
                requestMethod: original.headers.first(name: "access-control-request-method"),
                requestHeaders: original.headers[canonicalForm: "access-control-request-headers"].joined(separator: ","))
            switch outcome {
            case .notCORS:
                return nil
            case .preflight(let allowed, let headers):
                var response = LocalResponse(
                    status: allowed ? .noContent : .forbidden, reason: allowed ? "cors_preflight" : "cors_refused",
                    message: allowed ? "" : "cross-origin request not allowed")
                response.extraHeaders = headers
                return response
            case .actual(let headers):
                verdict.response.add += headers
                return nil
            }

        case .validate(let rules):
            return validate(rules, original, verdict: &verdict)

        case .transform(let transform):
            Self.transform(&upstream, transform)
            verdict.response.add += transform.responseHeaders.add
            verdict.response.set += transform.responseHeaders.set
            verdict.response.remove += transform.responseHeaders.remove
            return nil

        case .redirect(let location, let status):
            let (path, query) = Self.split(original.uri)
            var response = LocalResponse(status: HTTPResponseStatus(statusCode: status), reason: "redirect", message: "")
            let target = location.replacingOccurrences(of: "${path}", with: String(path))
                .replacingOccurrences(of: "${query}", with: query.map { "?\($0)" } ?? "")
            response.extraHeaders = [("location", target)]
            response.fixedBody = ("text/plain; charset=utf-8", "")
            return response

        case .respond(let status, let body, let contentType):
            var response = LocalResponse(status: HTTPResponseStatus(statusCode: status), reason: "fixed_response", message: "")
            response.fixedBody = (contentType, body)
            return response

        case .rateLimit(let policy):
            guard let limiter = shared.limiters[index] else { return nil }
            let key: String
            switch policy.key {
            case .clientIP: key = client
            case .header(let name): key = original.headers.first(name: name) ?? ""
            case .claim(let name): key = identity.claims[name]?.headerValue ?? ""
            case .consumer: key = identity.consumer?.name ?? ""
            case .route: key = route
            }
            if policy.store != nil {
                verdict.deferred = DeferredCheck(policy: index, kind: .sharedRateLimit(key: key))
                return nil
            }
            return Self.limited(policy, limiter.take(key, now: monotonic), verdict: &verdict)
        }
    }

    /// A rate-limit decision: 429 with `Retry-After` when refused; the RateLimit headers either way.
    static func limited(_ policy: RateLimitPolicy, _ decision: TokenBucket.Decision, verdict: inout Verdict) -> LocalResponse? {
        let headers = rateLimitHeaders(policy, decision: decision)
        if case .deny(let retryAfter) = decision {
            var response = LocalResponse(
                status: .tooManyRequests, reason: "rate_limited",
                message: "rate limit \(policy.name) exceeded: \(policy.bucket.requests) requests per \(policy.bucket.period)")
            response.extraHeaders = [("retry-after", "\(wholeSeconds(retryAfter))")] + headers
            return response
        }
        verdict.response.add += headers
        return nil
    }

    /// An introspection answer applied to a request: inactive → 401; missing scopes → 403
    /// `insufficient_scope` (RFC 6750 §3.1); else the chosen fields go upstream.
    static func evaluate(
        _ policy: OAuth2Policy, _ claims: [String: JSONValue]?, upstream: inout HTTPRequestHead, identity: inout Identity
    ) -> LocalResponse? {
        guard let claims, claims["active"] == .bool(true) else {
            var response = LocalResponse(status: .unauthorized, reason: "unauthorized", message: "the token is not active")
            response.extraHeaders = [("www-authenticate", #"Bearer realm="gantry", error="invalid_token", error_description="the token is not active""#)]
            return response
        }
        let granted = Set((claims["scope"]?.headerValue ?? "").split(separator: " ").map(String.init))
        let missing = policy.requiredScopes.filter { !granted.contains($0) }
        if !missing.isEmpty {
            var response = LocalResponse(status: .forbidden, reason: "insufficient_scope", message: "the token lacks scope \(missing.joined(separator: " "))")
            response.extraHeaders = [
                ("www-authenticate", #"Bearer realm="gantry", error="insufficient_scope", scope="\#(policy.requiredScopes.joined(separator: " "))""#)
            ]
            return response
        }
        identity.claims = claims
        for (claim, header) in policy.forwardClaims {
            if let value = claims[claim]?.headerValue { upstream.headers.add(name: header, value: value) }
        }
        return nil
    }

    private func validate(_ rules: ValidationPolicy, _ head: HTTPRequestHead, verdict: inout Verdict) -> LocalResponse? {
        func bad(_ message: String) -> LocalResponse {
            LocalResponse(status: .badRequest, reason: "invalid_request", message: message)
        }
        if !rules.methods.isEmpty, !rules.methods.contains(head.method.rawValue) {
            var response = LocalResponse(status: .methodNotAllowed, reason: "method_not_allowed", message: "\(head.method.rawValue) is not allowed here")
            response.extraHeaders = [("allow", rules.methods.joined(separator: ", "))]
            return response
        }
        for name in rules.requiredHeaders where head.headers.first(name: name) == nil {
            return bad("the \(name) header is required")
        }
        if !rules.requiredQuery.isEmpty {
            let query = Self.split(head.uri).query ?? ""
            let names = Set(query.split(separator: "&").map { String($0.split(separator: "=", maxSplits: 1).first ?? "") })
            for name in rules.requiredQuery where !names.contains(name) { return bad("the query parameter \(name) is required") }
        }
        let length = head.headers.first(name: "content-length").flatMap(Int.init)
        let hasBody = (length ?? 0) > 0 || head.headers.contains(name: "transfer-encoding")
        if !rules.contentTypes.isEmpty, hasBody {
            let type = (head.headers.first(name: "content-type") ?? "").split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
            if !rules.contentTypes.contains(type) {
                return LocalResponse(
                    status: .unsupportedMediaType, reason: "unsupported_media_type",
                    message: "content type \(type.isEmpty ? "(none)" : type) is not one of \(rules.contentTypes.joined(separator: ", "))")
            }
        }
        if let max = rules.maxBodySize {
            if let length, length > max {
                var response = LocalResponse(status: .payloadTooLarge, reason: "payload_too_large", message: "the body is larger than \(max) bytes")
                response.closesConnection = true
                return response
            }
            verdict.maxBodySize = min(verdict.maxBodySize ?? max, max)
        }
        if let schema = rules.jsonSchema { verdict.bodySchema = schema }
        return nil
    }

    private static func transform(_ head: inout HTTPRequestHead, _ transform: TransformPolicy) {
        var (path, query) = split(head.uri)
        var changed = false
        if let prefix = transform.stripPrefix, path == prefix || path.hasPrefix(prefix + "/") {
            path = path.dropFirst(prefix.count)
            if path.isEmpty { path = "/" }
            changed = true
        }
        if let (pattern, replacement) = transform.rewrite, let rewritten = pattern.rewrite(String(path), with: replacement) {
            path = Substring(rewritten.hasPrefix("/") ? rewritten : "/" + rewritten)
            changed = true
        }
        if changed { head.uri = String(path) + (query.map { "?\($0)" } ?? "") }
        apply(transform.requestHeaders, to: &head.headers)
    }

    /// remove, then set, then add, as Kong's request-transformer orders them.
    static func apply(_ edits: HeaderEdits, to headers: inout HTTPHeaders) {
        guard !edits.isEmpty else { return }
        for name in edits.remove { headers.remove(name: name) }
        for (name, value) in edits.set { headers.replaceOrAdd(name: name, value: value) }
        for (name, value) in edits.add { headers.add(name: name, value: value) }
    }

    static func split(_ uri: String) -> (path: Substring, query: Substring?) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return (parts[0], parts.count == 2 ? parts[1] : nil)
    }

    private func checkToken(_ policy: JWTPolicy, index: Int, original: HTTPRequestHead, now: Date)
        -> Result<[String: JSONValue], JWTFailure>
    {
        guard let found = Self.token(from: original, source: policy.tokenSource) else { return .failure(.missing) }
        let token = String(found)
        let seconds = now.timeIntervalSince1970
        if let claims = verifiedTokens[index]?.lookup(token, now: seconds) { return .success(claims) }
        let keys = policy.staticKeys + (fetchedKeys[index] ?? [])
        let result = JWTVerifier.verify(token, keys: keys, rules: policy.rules, now: now)
        switch result {
        case .success(let claims):
            verifiedTokens[index, default: VerifiedTokenCache()].store(token, claims: claims, rules: policy.rules, now: seconds)
        case .failure(.unknownKey) where policy.keySource != nil:
            shared.requestRefetch(policy: index)
        case .failure:
            break
        }
        return result
    }

    static func token(from head: HTTPRequestHead, source: JWTPolicy.TokenSource) -> Substring? {
        switch source {
        case .bearer:
            guard let value = head.headers.first(name: "authorization"), value.count > 7,
                value.prefix(7).lowercased() == "bearer "
            else { return nil }
            return value.dropFirst(7).drop(while: { $0 == " " })
        case .header(let name):
            return head.headers.first(name: name).map { Substring($0) }
        case .cookie(let name):
            for value in head.headers[canonicalForm: "cookie"] {
                for pair in value.split(separator: ";") {
                    let trimmed = pair.drop(while: { $0 == " " })
                    if trimmed.hasPrefix(name + "=") { return trimmed.dropFirst(name.count + 1) }
                }
            }
            return nil
        case .query(let name):
            guard let query = split(head.uri).query else { return nil }
            for pair in query.split(separator: "&") where pair.hasPrefix(name + "=") {
                return Substring(String(pair.dropFirst(name.count + 1)).removingPercentEncoding ?? "")
            }
            return nil
        }
    }

    /// 401 with the RFC 6750 §3 challenge: no error code when there was no token at all.
    static func unauthorized(_ failure: JWTFailure) -> LocalResponse {
        var response = LocalResponse(status: .unauthorized, reason: "unauthorized", message: failure.description)
        let description = failure.description.replacingOccurrences(of: "\"", with: "'")
        response.extraHeaders = [
            (
                "www-authenticate",
                failure == .missing
                    ? #"Bearer realm="gantry""# : #"Bearer realm="gantry", error="invalid_token", error_description="\#(description)""#
            )
        ]
        return response
    }

    /// The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers): the policy's
    /// quota and window, and what is left of it and when it is whole again.
    static func rateLimitHeaders(_ policy: RateLimitPolicy, decision: TokenBucket.Decision) -> [(String, String)] {
        let bucket = policy.bucket
        let window = max(1, wholeSeconds(bucket.period))
        let remaining: Int
        let reset: Int
        switch decision {
        case .allow(let left):
            remaining = left
            reset = wholeSeconds(bucket.period * Double(bucket.burst - left) / Double(bucket.requests))
        case .deny(let retryAfter):
            remaining = 0
            reset = wholeSeconds(retryAfter)
        }
        return [
            ("ratelimit-policy", "\"\(policy.name)\";q=\(bucket.requests);w=\(window)"),
            ("ratelimit", "\"\(policy.name)\";r=\(remaining);t=\(reset)"),
        ]
    }

    static func wholeSeconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) + (attoseconds > 0 ? 1 : 0)
    }
}
