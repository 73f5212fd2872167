import Foundation
import GantryConfig
import GantryCore
import GantryHTTP
import NIOCore
import NIOHTTP1
import NIOPosix

/// Policy checks that wait for an answer from elsewhere before the request may go on: OAuth 2.0
/// token introspection and rate limits shared through Redis. Reading from the client pauses
/// meanwhile; the answer resumes the exchange on its event loop.
extension ProxyExchange {
    /// The rest of the route's policies, after a deferred one, with what it learned.
    func continueAfter(_ check: PolicyEngine.DeferredCheck, claims: [String: JSONValue]) {
        let original = plan.upstreamHead.built
        let verdict = loop.policies.apply(
            check.remaining, policies: loop.snapshot.policies, original: original, upstream: &plan.upstreamHead.built,
            client: downstream?.clientIP ?? "", route: plan.route.name, now: Date(), monotonic: NIODeadline.now().uptimeNanoseconds,
            claims: claims)
        if let reject = verdict.reject {
            respondLocally(reject)
            return
        }
        plan.responseEdits.add += verdict.response.add
        plan.responseEdits.set += verdict.response.set
        plan.responseEdits.remove += verdict.response.remove
        if let limit = verdict.maxBodySize { plan.maxRequestBody = min(plan.maxRequestBody ?? limit, limit) }
        if let schema = verdict.bodySchema { plan.bodySchema = schema }
        plan.deferred = verdict.deferred
        proceed()
    }

    // MARK: Token introspection (oauth2 policies)

    func introspect(_ check: PolicyEngine.DeferredCheck, token: String, cacheKey: String) {
        guard case .oauth2(let policy) = loop.snapshot.policies[check.policy] else { return }
        let target: (host: String, port: Int, path: String)?
        switch policy.source {
        case .service(let name, let path):
            let index = loop.snapshot.services.firstIndex { $0.name == name }
            target = index.flatMap { loop.endpoints[$0].endpoints.randomElement() }.map { ($0.address.host, $0.address.port, path) }
        case .url(let url):
            let parts = URLComponents(string: url)
            target = parts?.host.map { ($0, parts?.port ?? 80, parts?.percentEncodedPath ?? "/") }
        }
        guard let target else {
            respondLocally(LocalResponse(status: .serviceUnavailable, reason: "introspection_unavailable", message: "the token could not be checked"))
            return
        }
        downstream?.setReadsPaused(true)
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let form = "token=\(token.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")&token_type_hint=access_token"
        var headers = [("content-type", "application/x-www-form-urlencoded")]
        if let id = policy.clientId, let secret = policy.clientSecret {
            headers.append(("authorization", "Basic " + Data("\(id):\(secret)".utf8).base64EncodedString()))
        }
        let sendable = headers
        loop.eventLoop.makeFutureWithTask {
            try await SimpleHTTPClient.request(
                .POST, host: target.host, port: target.port, path: target.path, body: Data(form.utf8), headers: sendable)
        }.assumeIsolated().whenComplete { [self] result in
            introspected(check, cacheKey: cacheKey, policy, result)
        }
    }

    func introspected(
        _ check: PolicyEngine.DeferredCheck, cacheKey: String, _ policy: OAuth2Policy, _ result: Result<(status: Int, body: Data), any Error>
    ) {
        guard !finished else { return }
        downstream?.setReadsPaused(false)
        guard case .success(let answer) = result, answer.status == 200,
            let claims = try? JSONDecoder().decode([String: JSONValue].self, from: answer.body)
        else {
            respondLocally(LocalResponse(status: .serviceUnavailable, reason: "introspection_unavailable", message: "the token could not be checked"))
            return
        }
        let now = NIODeadline.now().uptimeNanoseconds
        let active = claims["active"] == .bool(true)
        var ttl = Double(policy.cacheTTL.components.seconds)
        if active, case .number(let exp)? = claims["exp"] { ttl = min(ttl, exp - Date().timeIntervalSince1970) }
        if !active { ttl = min(ttl, 10) }
        if ttl > 0 {
            loop.policies.shared.introspections.store(
                cacheKey, IntrospectionCache.Entry(claims: active ? claims : nil, expires: now + UInt64(ttl * 1e9)), now: now)
        }
        var identity = PolicyEngine.Identity(claims: check.claims)
        if let reject = PolicyEngine.evaluate(policy, active ? claims : nil, upstream: &plan.upstreamHead.built, identity: &identity) {
            respondLocally(reject)
            return
        }
        continueAfter(check, claims: identity.claims)
    }

    // MARK: Shared rate limits (Redis)

    /// A token bucket in Redis, updated atomically by one script: refill by elapsed time (the
    /// server's clock, so every gantry agrees), take a token if there is one, and expire the
    /// key once it would be full again.
    static let tokenBucketScript = """
        local capacity = tonumber(ARGV[1])
        local per_token = tonumber(ARGV[2])
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(state[1]) or capacity
        local ts = tonumber(state[2]) or now
        if now > ts then
          tokens = math.min(capacity, tokens + (now - ts) / per_token)
          ts = now
        end
        local allowed = 0
        local wait = 0
        if tokens >= 1 then
          tokens = tokens - 1
          allowed = 1
        else
          wait = math.ceil((1 - tokens) * per_token)
        end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
        redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * per_token / 1000) + 1000)
        return {allowed, math.floor(tokens), wait}
        """

    func takeSharedToken(_ check: PolicyEngine.DeferredCheck, key: String) {
        guard case .rateLimit(let policy) = loop.snapshot.policies[check.policy], let store = policy.store else { return }
        downstream?.setReadsPaused(true)
        let microsecondsPerToken = policy.bucket.nanosecondsPerToken / 1000
        loop.redis(host: store.host, port: store.port)
            .send(
                ["EVAL", Self.tokenBucketScript, "1", "gantry:ratelimit:\(policy.name):\(key)", "\(policy.bucket.burst)", "\(microsecondsPerToken)"],
                timeout: TimeAmount(store.timeout)
            )
            .assumeIsolated().whenComplete { [self] result in
                sharedTokenTaken(check, policy, store, result)
            }
    }

    func sharedTokenTaken(
        _ check: PolicyEngine.DeferredCheck, _ policy: RateLimitPolicy, _ store: RateLimitPolicy.SharedStore,
        _ result: Result<RedisClient.Value, any Error>
    ) {
        guard !finished else { return }
        downstream?.setReadsPaused(false)
        guard case .success(.array(let values)) = result, values.count == 3, case .integer(let allowed) = values[0],
            case .integer(let tokens) = values[1], case .integer(let wait) = values[2]
        else {
            loop.metrics.add(.rateLimitStoreFailures)
            if store.failOpen {
                continueAfter(check, claims: check.claims)
            } else {
                respondLocally(
                    LocalResponse(status: .serviceUnavailable, reason: "rate_limit_store_unavailable", message: "the rate limit could not be checked"))
            }
            return
        }
        let decision: TokenBucket.Decision = allowed == 1 ? .allow(remaining: tokens) : .deny(retryAfter: .microseconds(wait))
        var verdict = PolicyEngine.Verdict()
        if let reject = PolicyEngine.limited(policy, decision, verdict: &verdict) {
            respondLocally(reject)
            return
        }
        plan.responseEdits.add += verdict.response.add
        continueAfter(check, claims: check.claims)
    }
}
