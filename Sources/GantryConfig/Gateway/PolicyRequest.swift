import Foundation
import GantryCore
import NIOHTTP1

/// A request as gateway policies see it: the head the client sent, the head that goes
/// upstream, and what the policies so far have learnt and decided. Every policy on a route
/// reads and changes the same value, in the route's order, including policies that ran after
/// a wait.
public struct PolicyRequest: Sendable {
    /// As the client sent it. Credentials, CORS and validation read this, never what an
    /// earlier policy changed.
    public let original: HTTPRequestHead
    /// As it will go upstream; policies change it (claims as headers, rewrites).
    public var upstream: HTTPRequestHead
    public let clientIP: String
    /// The route's name: the key of a rate limit per route.
    public let route: String
    /// Wall-clock time (token claims) and monotonic nanoseconds (buckets, caches), set by
    /// the data plane before each policy runs.
    public var now: Date
    public var monotonic: UInt64
    /// What earlier policies learnt about the caller.
    public var caller = Caller()
    /// Changes to the response the client gets (rate-limit and CORS headers, transforms).
    /// Headers in `add` go on gantry's own refusals too, so a browser can read them.
    public var responseEdits = HeaderEdits()
    /// The most request body a validate policy allows.
    public var maxBodySize: Int?
    /// A validate policy's JSON Schema: the body is read in full and checked before it goes on.
    public var bodySchema: JSONSchema?
    /// `RateLimit-Policy` items of every rate limit on the route, in order: a refusal lists them all.
    public var routeRateLimits: [String] = []
    /// Something a policy noticed on a request it let through, for the access log's `detail`
    /// (a rate limit in shadow mode that would have refused).
    public var note: LocalReason?

    public init(original: HTTPRequestHead, upstream: HTTPRequestHead, clientIP: String, route: String, now: Date, monotonic: UInt64) {
        self.original = original
        self.upstream = upstream
        self.clientIP = clientIP
        self.route = route
        self.now = now
        self.monotonic = monotonic
    }

    /// Who is calling, as far as the policies so far could tell.
    public struct Caller: Sendable {
        /// A verified token's claims, or a token introspection's answer.
        public var claims: [String: JSONValue] = [:]
        /// The consumer an API key belongs to.
        public var consumer: APIKeys.Consumer?

        public init() {}
    }

    /// The request target's path and query.
    public var target: URITarget { URITarget(original.uri) }
}
