import Foundation
import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1

/// Runs a route's gateway policies on a request, in the route's order; any of them may answer
/// locally, and then the request never reaches an upstream. One per event loop: it holds the
/// loop's copy of the fetched JWT keys (published like endpoint sets, so verifying takes no
/// lock); rate limiters are shared by all loops through ``GatewayState``.
final class PolicyEngine {
    /// Fetched keys by jwt policy index.
    var fetchedKeys: [Int: [JWTKey]] = [:]
    let shared: GatewayState

    init(shared: GatewayState) {
        self.shared = shared
    }

    struct Verdict {
        var reject: LocalResponse?
        /// Added to the response the client gets (rate-limit headers).
        var responseHeaders: [(String, String)] = []
    }

    /// - Parameters:
    ///   - original: the request as the client sent it (tokens are read here).
    ///   - upstream: the head that goes upstream; claims are forwarded into it.
    func apply(
        _ indices: [Int], policies: [GatewayPolicy], original: HTTPRequestHead, upstream: inout HTTPRequestHead, client: String,
        route: String, now: Date, monotonic: UInt64
    ) -> Verdict {
        var verdict = Verdict()
        var claims: [String: JSONValue] = [:]
        for index in indices {
            switch policies[index] {
            case .jwt(let policy):
                switch checkToken(policy, index: index, original: original, now: now) {
                case .success(let verified):
                    claims = verified
                    for (claim, header) in policy.forwardClaims {
                        upstream.headers.remove(name: header)  // never trust a client's copy
                        if let value = verified[claim]?.headerValue { upstream.headers.add(name: header, value: value) }
                    }
                case .failure(let failure):
                    verdict.reject = Self.unauthorized(failure)
                    return verdict
                }
            case .rateLimit(let policy):
                guard let limiter = shared.limiters[index] else { continue }
                let key: String
                switch policy.key {
                case .clientIP: key = client
                case .header(let name): key = original.headers.first(name: name) ?? ""
                case .claim(let name): key = claims[name]?.headerValue ?? ""
                case .route: key = route
                }
                let decision = limiter.take(key, now: monotonic)
                let headers = Self.rateLimitHeaders(policy, decision: decision)
                if case .deny(let retryAfter) = decision {
                    var response = LocalResponse(
                        status: .tooManyRequests, reason: "rate_limited",
                        message: "rate limit \(policy.name) exceeded: \(policy.bucket.requests) requests per \(policy.bucket.period)")
                    response.extraHeaders = [("retry-after", "\(Self.wholeSeconds(retryAfter))")] + headers
                    verdict.reject = response
                    return verdict
                }
                verdict.responseHeaders += headers
            }
        }
        return verdict
    }

    private func checkToken(_ policy: JWTPolicy, index: Int, original: HTTPRequestHead, now: Date)
        -> Result<[String: JSONValue], JWTFailure>
    {
        guard let token = Self.token(from: original, source: policy.tokenSource) else { return .failure(.missing) }
        let keys = policy.staticKeys + (fetchedKeys[index] ?? [])
        let result = JWTVerifier.verify(token, keys: keys, rules: policy.rules, now: now)
        if case .failure(.unknownKey) = result, policy.keySource != nil { shared.requestRefetch(policy: index) }
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
            guard let query = head.uri.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
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
