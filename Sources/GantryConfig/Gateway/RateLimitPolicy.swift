import GantryCore
import NIOCore
import NIOHTTP1

/// `rateLimit:` a token bucket per key: `requests` per `per`, up to `burst` at once; 429 (or the
/// policy's `status`) with `Retry-After` beyond it, and the IETF RateLimit fields on every
/// answer. The buckets live in gantry's memory, shared by its event loops, or in Redis, shared
/// by several gantry instances (the request waits for Redis' answer). With `enforce: false` the
/// policy only counts, logs and tells, for rolling a limit out.
public struct RateLimitPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        public var requests: Int?
        public var per: DurationSpec?
        /// Default: `requests`.
        public var burst: Int?
        /// What is limited: `{clientIP: true}` (default), `{header: X-API-Key}`, `{claim: sub}`
        /// (after a jwt policy), `{consumer: true}` (after an apiKey policy), `{route: true}`
        /// (one bucket for the route).
        public var key: KeySpec?
        /// Shared by several gantry instances through Redis: `{redis: 127.0.0.1:6379}`.
        public var store: StoreSpec?
        /// `false`: shadow mode, where a request over the limit is counted, logged and given the
        /// fields, and passes. Default `true`.
        public var enforce: Bool?
        /// The refusal's status: 429 by default, 503 for load shedding.
        public var status: Int?
    }

    public struct KeySpec: Decodable, Sendable, ExclusiveKeys {
        public var clientIP: Bool?
        public var header: String?
        public var claim: String?
        public var route: Bool?
        public var consumer: Bool?

        public static let exclusiveKeys = ExclusiveKeySet(
            [("clientIP", "clientIP: true"), ("header", "header: NAME"), ("claim", "claim: NAME"), ("consumer", "consumer: true"), ("route", "route: true")],
            flags: ["clientIP", "route", "consumer"])
    }

    public struct StoreSpec: Decodable, Sendable {
        public var redis: String?
        /// When the store cannot answer: `allow` (fail open, default) or `deny` (fail closed: 503).
        public var onFailure: String?
        /// Default 100ms.
        public var timeout: DurationSpec?
    }

    public enum Key: Sendable, Hashable {
        case clientIP
        /// Lowercased.
        case header(String)
        case claim(String)
        case route
        case consumer
    }

    public struct SharedStore: Sendable, Hashable {
        public let host: String
        public let port: Int
        public let failOpen: Bool
        public let timeout: Duration
    }

    public static let kind = "rateLimit"

    public let name: String
    public let bucket: TokenBucket
    public let key: Key
    /// nil: the limit is kept in this gantry's memory.
    public let store: SharedStore?
    public let enforce: Bool
    public let status: HTTPResponseStatus
    /// `RateLimit-Policy`'s item for this limit.
    public let policyField: String

    public var requires: (facts: CallerFacts, because: String)? {
        switch key {
        case .claim(let claim): (.claims, "is keyed by the \(claim) claim")
        case .consumer: (.consumer, "is keyed by the consumer")
        default: nil
        }
    }

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> RateLimitPolicy? {
        guard let requests = spec.requests, requests >= 1 else {
            compilation.problem(at: ["requests"], "needs a number of requests of at least 1")
            return nil
        }
        guard let per = spec.per?.duration, per > .zero else {
            compilation.problem(at: ["per"], "needs a period such as 1s or 1m")
            return nil
        }
        if let burst = spec.burst, burst < 1 { compilation.problem(at: ["burst"], "must be at least 1") }
        var key = Key.clientIP
        if let spec = spec.key {
            if let header = spec.header {
                key = .header(compilation.headerName(header, at: ["key", "header"]))
            } else if let claim = spec.claim {
                key = .claim(claim)
            } else if spec.consumer == true {
                key = .consumer
            } else if spec.route == true {
                key = .route
            }
        }
        var store: SharedStore?
        if let shared = spec.store {
            if let address = shared.redis, let endpoint = EndpointAddress(parsing: address) {
                var failOpen = true
                switch shared.onFailure ?? "allow" {
                case "allow": break
                case "deny": failOpen = false
                default: compilation.problem(at: ["store", "onFailure"], "must be allow or deny")
                }
                let timeout = compilation.positive(shared.timeout, default: .milliseconds(100), at: ["store", "timeout"])
                store = SharedStore(host: endpoint.host, port: endpoint.port, failOpen: failOpen, timeout: timeout)
            } else {
                compilation.problem(at: ["store", "redis"], "write the Redis address as host:port, e.g. 127.0.0.1:6379")
            }
        }
        let status = spec.status ?? 429
        if !(400...599).contains(status) { compilation.problem(at: ["status"], "must be a 4xx or 5xx status, e.g. 429 or 503") }
        guard !compilation.hasProblems else { return nil }
        let bucket = TokenBucket(requests: requests, per: per, burst: spec.burst)
        return RateLimitPolicy(
            name: name, bucket: bucket, key: key, store: store, enforce: spec.enforce ?? true, status: HTTPResponseStatus(statusCode: status),
            policyField: RateLimitFields.policy(name: name, bucket: bucket))
    }

    public func makeSharedState() -> RateLimiter { RateLimiter(bucket: bucket) }

    public func evaluate(_ request: inout PolicyRequest, shared limiter: RateLimiter, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        let bucketKey: String
        switch key {
        case .clientIP: bucketKey = request.clientIP
        case .header(let name): bucketKey = request.original.headers.first(name: name) ?? ""
        case .claim(let name): bucketKey = request.caller.claims[name]?.headerValue ?? ""
        case .consumer: bucketKey = request.caller.consumer?.name ?? ""
        case .route: bucketKey = request.route
        }
        guard let store else { return decide(limiter.take(bucketKey, now: request.monotonic), &request, environment: environment) }
        let microsecondsPerToken = bucket.nanosecondsPerToken / 1000
        let answer = environment.redis(
            host: store.host, port: store.port,
            command: ["EVAL", Self.tokenBucketScript, "1", "gantry:ratelimit:\(name):\(bucketKey)", "\(bucket.burst)", "\(microsecondsPerToken)"],
            timeout: store.timeout)
        let policy = self
        return .wait(
            answer.hop(to: environment.eventLoop).map { value in
                PolicyResumption { request in
                    guard case .array(let values) = value, values.count == 3, case .integer(let allowed) = values[0],
                        case .integer(let tokens) = values[1], case .integer(let wait) = values[2]
                    else { return policy.storeFailed(environment) }
                    return policy.decide(allowed == 1 ? .allow(remaining: tokens) : .deny(retryAfter: .microseconds(wait)), &request, environment: environment)
                }
            }.recover { _ in PolicyResumption { _ in policy.storeFailed(environment) } })
    }

    private func storeFailed(_ environment: any PolicyEnvironment) -> PolicyVerdict {
        environment.record(.rateLimitStoreFailure)
        environment.record(.rateLimitDecision(policy: name, .error))
        if store?.failOpen ?? true { return .proceed }
        return .respond(LocalResponse(.rateLimitStoreUnavailable, message: "the rate limit could not be checked"))
    }

    /// The refusal (status, `Retry-After`) when over the limit and enforced; the RateLimit
    /// fields either way.
    func decide(_ decision: TokenBucket.Decision, _ request: inout PolicyRequest, environment: any PolicyEnvironment) -> PolicyVerdict {
        let status = ("ratelimit", RateLimitFields.status(name: name, bucket: bucket, decision: decision))
        guard case .deny(let retryAfter) = decision else {
            environment.record(.rateLimitDecision(policy: name, .allowed))
            request.responseEdits.add += [("ratelimit-policy", policyField), status]
            return .proceed
        }
        environment.record(.rateLimitDecision(policy: name, .limited))
        guard enforce else {
            request.note = request.note ?? .rateLimitShadow
            request.responseEdits.add += [("ratelimit-policy", policyField), status]
            return .proceed
        }
        // On a refusal every limit of the route is listed, and `RateLimit` names the one that
        // refused: the fields earlier limits added for a response that will not come go.
        request.responseEdits.add.removeAll { $0.0 == "ratelimit" || $0.0 == "ratelimit-policy" }
        let policies = (request.routeRateLimits.isEmpty ? [policyField] : request.routeRateLimits).map { ("ratelimit-policy", $0) }
        return .respond(
            LocalResponse(
                .rateLimited, status: self.status, message: "rate limit \(name) exceeded: \(bucket.requests) requests per \(bucket.period)",
                extraHeaders: [("retry-after", "\(RateLimitFields.retryAfter(retryAfter))")] + policies + [status]))
    }

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
}
