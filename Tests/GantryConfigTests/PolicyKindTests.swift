import Crypto
import Foundation
import GantryCore
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GantryConfig

/// Every gateway policy kind, evaluated on requests without sockets: what it lets through,
/// what it answers, and what it waits for (the environment's answers are the test's).
@Suite struct PolicyKindTests {
    /// A world whose answers the test gives: requests to other servers and Redis commands
    /// wait on promises the test completes.
    final class Environment: PolicyEnvironment, @unchecked Sendable {
        let loop = EmbeddedEventLoop()
        var eventLoop: any EventLoop { loop }
        private(set) var sent: [OutgoingRequest] = []
        private(set) var answers: [EventLoopPromise<OutgoingResponse>] = []
        private(set) var commands: [[String]] = []
        private(set) var replies: [EventLoopPromise<RedisValue>] = []
        private(set) var events: [PolicyEvent] = []
        /// The rate-limit decisions recorded, as `policy:decision`.
        var decisions: [String] {
            events.compactMap { if case .rateLimitDecision(let policy, let decision) = $0 { "\(policy):\(decision.rawValue)" } else { nil } }
        }

        func endpoint(ofService name: String) -> EndpointAddress? { EndpointAddress(host: "127.0.0.1", port: 9999) }

        func send(_ request: OutgoingRequest) -> EventLoopFuture<OutgoingResponse> {
            sent.append(request)
            let promise = loop.makePromise(of: OutgoingResponse.self)
            answers.append(promise)
            return promise.futureResult
        }

        func redis(host: String, port: Int, command: [String], timeout: Duration) -> EventLoopFuture<RedisValue> {
            commands.append(command)
            let promise = loop.makePromise(of: RedisValue.self)
            replies.append(promise)
            return promise.futureResult
        }

        func record(_ event: PolicyEvent) { events.append(event) }
    }

    static let secret = Data("a-shared-secret-long-enough-for-hs256".utf8)

    static func token(_ claims: String, kid: String? = nil, secret: Data = secret) -> String {
        let header = Base64URL.encode(Data(#"{"alg":"HS256"\#(kid.map { #","kid":"\#($0)""# } ?? "")}"#.utf8))
        let body = Base64URL.encode(Data(claims.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(body)".utf8), using: SymmetricKey(data: secret))
        return "\(header).\(body).\(Base64URL.encode(Data(mac)))"
    }

    /// The policies of `gateway.policies` (given as YAML list items), compiled and bound to
    /// fresh state, by name.
    static func policies(_ items: String) throws -> [String: BoundPolicy] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-policy-kinds-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try #"{"keys":[{"kty":"oct","kid":"k1","k":"\#(Base64URL.encode(secret))"}]}"#
            .write(to: directory.appendingPathComponent("keys.json"), atomically: true, encoding: .utf8)
        let yaml = """
            loadBalancer: {listeners: [{name: http, port: 8080}]}
            gateway:
              policies:
            \(items.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            services:
              - {name: app, endpoints: [127.0.0.1:9001]}
            """
        let snapshot = try ConfigLoader.load(yaml: yaml, file: directory.appendingPathComponent("gantry.yaml").path, coreCount: 1).get().snapshot
        var bound: [String: BoundPolicy] = [:]
        for policy in snapshot.policies { bound[policy.name] = policy.bind(shared: policy.makeSharedState(), loop: policy.makeLoopState()) }
        return bound
    }

    static func request(
        _ method: HTTPMethod = .GET, _ uri: String = "/app/x?a=1", headers: [(String, String)] = [], client: String = "10.0.0.7"
    ) -> PolicyRequest {
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
        return PolicyRequest(original: head, upstream: head, clientIP: client, route: "app", now: Date(), monotonic: 1_000_000_000)
    }

    enum Expected: Sendable, CustomStringConvertible {
        case proceed
        case respond(Int, LocalReason)
        case wait

        var description: String {
            switch self {
            case .proceed: "proceed"
            case .respond(let status, let reason): "respond \(status) \(reason.label)"
            case .wait: "wait"
            }
        }
    }

    /// What a future an embedded loop completes holds (its callbacks have run by then).
    static func value<T: Sendable>(_ future: EventLoopFuture<T>) throws -> T {
        let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
        future.whenComplete { outcome in result.withLockedValue { $0 = outcome } }
        return try #require(result.withLockedValue { $0 }).get()
    }

    static func check(_ verdict: PolicyVerdict, is expected: Expected, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        switch (verdict, expected) {
        case (.proceed, .proceed), (.wait, .wait): break
        case (.respond(let response), .respond(let status, let reason)):
            #expect(Int(response.status.code) == status, sourceLocation: sourceLocation)
            #expect(response.reason == reason, sourceLocation: sourceLocation)
        default:
            Issue.record("expected \(expected), got \(verdict)", sourceLocation: sourceLocation)
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        let kind: String
        let policy: String
        let method: HTTPMethod
        let uri: String
        let headers: [(String, String)]
        let client: String
        let expected: Expected

        init(
            _ kind: String, _ policy: String, method: HTTPMethod = .GET, uri: String = "/app/x?a=1", headers: [(String, String)] = [],
            client: String = "10.0.0.7", _ expected: Expected
        ) {
            self.kind = kind
            self.policy = policy
            self.method = method
            self.uri = uri
            self.headers = headers
            self.client = client
            self.expected = expected
        }

        var testDescription: String { "\(kind) \(method) \(uri) \(headers.map { "\($0.0): \($0.1.prefix(12))" }) → \(expected)" }
    }

    static let validToken = token(#"{"sub":"ada","iss":"me","exp":4102444800}"#, kid: "k1")

    static let cases: [Case] = [
        Case("jwt", "jwt: {keys: [{jwksFile: keys.json}], issuer: me}", headers: [("authorization", "Bearer \(validToken)")], .proceed),
        Case("jwt", "jwt: {keys: [{jwksFile: keys.json}], issuer: me}", .respond(401, .unauthorized)),
        Case(
            "jwt", "jwt: {keys: [{jwksFile: keys.json}], issuer: me}",
            headers: [("authorization", "Bearer \(token(#"{"sub":"ada","iss":"me"}"#, kid: "k1", secret: Data("another-secret-of-thirty-two-bytes!".utf8)))")],
            .respond(401, .unauthorized)),
        Case(
            "jwt", "jwt: {jwks: {url: \"http://127.0.0.1:9/keys\"}, issuer: me}",
            headers: [("authorization", "Bearer \(token(#"{"sub":"ada","iss":"me"}"#, kid: "k2"))")], .wait),
        Case("oauth2", "oauth2: {introspection: {service: app}}", .respond(401, .unauthorized)),
        Case("oauth2", "oauth2: {introspection: {service: app}}", headers: [("authorization", "Bearer opaque")], .wait),
        Case("rateLimit", "rateLimit: {requests: 1, per: 1m}", .proceed),
        Case("rateLimit", "rateLimit: {requests: 1, per: 1m, store: {redis: 127.0.0.1:6379}}", .wait),
        Case("apiKey", "apiKey: {consumers: [{name: ci, keySHA256: [\(APIKeys.digest(of: "secret-key"))]}]}", headers: [("x-api-key", "secret-key")], .proceed),
        Case("apiKey", "apiKey: {consumers: [{name: ci, keySHA256: [\(APIKeys.digest(of: "secret-key"))]}]}", headers: [("x-api-key", "guess")], .respond(401, .unauthorized)),
        Case("acl", "acl: {allow: [admins]}", .respond(403, .forbidden)),
        Case("ipFilter", "ipFilter: {allow: [10.0.0.0/8]}", .proceed),
        Case("ipFilter", "ipFilter: {allow: [10.0.0.0/8]}", client: "192.0.2.1", .respond(403, .forbidden)),
        Case("cors", "cors: {origins: [\"https://app.example.com\"]}", headers: [("origin", "https://app.example.com")], .proceed),
        Case(
            "cors", "cors: {origins: [\"https://app.example.com\"]}", method: .OPTIONS,
            headers: [("origin", "https://app.example.com"), ("access-control-request-method", "POST")], .respond(204, .corsPreflight)),
        Case(
            "cors", "cors: {origins: [\"https://app.example.com\"]}", method: .OPTIONS,
            headers: [("origin", "https://evil.example"), ("access-control-request-method", "POST")], .respond(403, .corsRefused)),
        Case("validate", "validate: {methods: [GET], requiredQuery: [a]}", .proceed),
        Case("validate", "validate: {methods: [GET]}", method: .DELETE, .respond(405, .methodNotAllowed)),
        Case("validate", "validate: {requiredHeaders: [X-Tenant]}", .respond(400, .invalidRequest)),
        Case("validate", "validate: {requiredQuery: [b]}", .respond(400, .invalidRequest)),
        Case(
            "validate", "validate: {contentTypes: [application/json]}", method: .POST,
            headers: [("content-type", "text/plain"), ("content-length", "5")], .respond(415, .unsupportedMediaType)),
        Case("validate", "validate: {maxBodySize: 10}", method: .POST, headers: [("content-length", "11")], .respond(413, .payloadTooLarge)),
        Case("transform", "transform: {stripPrefix: /app}", .proceed),
        Case("redirect", "redirect: {location: \"https://example.com${path}${query}\", status: 301}", .respond(301, .redirect)),
        Case("respond", "respond: {status: 418, body: teapot}", .respond(418, .fixedResponse)),
    ]

    @Test(arguments: cases)
    func evaluates(_ example: Case) throws {
        let policy = try #require(Self.policies("- {name: p, \(example.policy)}")["p"])
        var request = Self.request(example.method, example.uri, headers: example.headers, client: example.client)
        Self.check(policy.evaluate(&request, environment: Environment()), is: example.expected)
    }

    /// Every registered kind has cases above; a new kind cannot be added without them.
    @Test func everyKindIsCovered() {
        #expect(Set(GatewayPolicies.kinds.map { $0.kind }) == Set(Self.cases.map(\.kind)))
    }

    // MARK: What each kind does to the request

    @Test func jwtForwardsClaimsAndDropsTheClientsCopies() throws {
        let policy = try #require(
            Self.policies("- {name: p, jwt: {keys: [{jwksFile: keys.json}], forwardClaims: [{claim: sub, header: X-User-ID}]}}")["p"])
        var request = Self.request(headers: [("authorization", "Bearer \(Self.validToken)"), ("x-user-id", "root")])
        Self.check(policy.evaluate(&request, environment: Environment()), is: .proceed)
        #expect(request.upstream.headers["x-user-id"] == ["ada"])
        #expect(request.caller.claims["sub"] == .string("ada"))
        #expect(request.original.headers["x-user-id"] == ["root"])
    }

    /// An unknown kid: the keys are fetched again once, and the request decides on the new set.
    @Test func jwtWaitsForKeysFetchedAgain() throws {
        let policy = try #require(Self.policies("- {name: p, jwt: {jwks: {service: app, path: /keys, minRefetchInterval: 1h}}}")["p"])
        let environment = Environment()
        var request = Self.request(headers: [("authorization", "Bearer \(Self.validToken)")])
        guard case .wait(let answer) = policy.evaluate(&request, environment: environment) else {
            Issue.record("no wait")
            return
        }
        #expect(environment.sent.map(\.path) == ["/keys"])
        // While the fetch is under way, another unknown kid waits for the same fetch.
        var second = Self.request(headers: [("authorization", "Bearer \(Self.token("{}", kid: "k9"))")])
        Self.check(policy.evaluate(&second, environment: environment), is: .wait)  // joins the fetch under way
        #expect(environment.sent.count == 1)
        let keys = #"{"keys":[{"kty":"oct","kid":"k1","k":"\#(Base64URL.encode(Self.secret))"}]}"#
        environment.answers[0].succeed(OutgoingResponse(status: 200, body: Data(keys.utf8)))
        let resumption = try Self.value(answer)
        Self.check(resumption.resume(&request), is: .proceed)
        #expect(request.caller.claims["sub"] == .string("ada"))
        // Now known: the next request with the same key proceeds without waiting.
        var third = Self.request(headers: [("authorization", "Bearer \(Self.validToken)")])
        Self.check(policy.evaluate(&third, environment: environment), is: .proceed)
        var fourth = Self.request(headers: [("authorization", "Bearer \(Self.token("{}", kid: "k8"))")])
        Self.check(policy.evaluate(&fourth, environment: environment), is: .respond(401, .unauthorized))
        #expect(environment.sent.count == 1)
    }

    @Test func oauth2AsksOnceThenAnswersFromItsCache() throws {
        let policy = try #require(
            Self.policies(
                "- {name: p, oauth2: {introspection: {service: app, path: /introspect}, requiredScopes: [read], forwardClaims: [{claim: client_id, header: X-Client}]}}"
            )["p"])
        let environment = Environment()
        var request = Self.request(headers: [("authorization", "Bearer opaque")])
        guard case .wait(let answer) = policy.evaluate(&request, environment: environment) else {
            Issue.record("no wait")
            return
        }
        #expect(environment.sent.first?.method == .POST)
        let form = String(decoding: environment.sent.first?.body ?? Data(), as: UTF8.self)
        #expect(form.hasPrefix("token=opaque"))
        environment.answers[0].succeed(OutgoingResponse(status: 200, body: Data(#"{"active":true,"scope":"read","client_id":"reports"}"#.utf8)))
        Self.check(try Self.value(answer).resume(&request), is: .proceed)
        #expect(request.upstream.headers["x-client"] == ["reports"])
        var again = Self.request(headers: [("authorization", "Bearer opaque")])
        Self.check(policy.evaluate(&again, environment: environment), is: .proceed)
        #expect(environment.sent.count == 1)

        var narrow = Self.request(headers: [("authorization", "Bearer narrow")])
        guard case .wait(let second) = policy.evaluate(&narrow, environment: environment) else {
            Issue.record("no wait")
            return
        }
        environment.answers[1].succeed(OutgoingResponse(status: 200, body: Data(#"{"active":true,"scope":"write"}"#.utf8)))
        Self.check(try Self.value(second).resume(&narrow), is: .respond(403, .insufficientScope))

        var broken = Self.request(headers: [("authorization", "Bearer other")])
        guard case .wait(let third) = policy.evaluate(&broken, environment: environment) else {
            Issue.record("no wait")
            return
        }
        environment.answers[2].fail(ChannelError.connectTimeout(.seconds(1)))
        Self.check(try Self.value(third).resume(&broken), is: .respond(503, .introspectionUnavailable))
    }

    @Test func rateLimitCountsInMemoryAndAsksRedisWhenShared() throws {
        let policies = try Self.policies(
            """
            - {name: local, rateLimit: {requests: 2, per: 1m}}
            - {name: shared, rateLimit: {requests: 5, per: 1s, store: {redis: 127.0.0.1:6379}}}
            - {name: closed, rateLimit: {requests: 5, per: 1s, store: {redis: 127.0.0.1:6379, onFailure: deny}}}
            """)
        let environment = Environment()
        for _ in 0..<2 {
            var request = Self.request()
            Self.check(policies["local"]!.evaluate(&request, environment: environment), is: .proceed)
            #expect(request.responseEdits.add.contains { $0.0 == "ratelimit" })
        }
        var third = Self.request()
        Self.check(policies["local"]!.evaluate(&third, environment: environment), is: .respond(429, .rateLimited))
        var otherClient = Self.request(client: "10.0.0.8")
        Self.check(policies["local"]!.evaluate(&otherClient, environment: environment), is: .proceed)

        var shared = Self.request()
        guard case .wait(let allowed) = policies["shared"]!.evaluate(&shared, environment: environment) else {
            Issue.record("no wait")
            return
        }
        #expect(environment.commands.first?.first == "EVAL")
        #expect(environment.commands.first?.contains("gantry:ratelimit:shared:10.0.0.7") == true)
        environment.replies[0].succeed(.array([.integer(1), .integer(4), .integer(0)]))
        Self.check(try Self.value(allowed).resume(&shared), is: .proceed)

        var refused = Self.request()
        guard case .wait(let denied) = policies["shared"]!.evaluate(&refused, environment: environment) else {
            Issue.record("no wait")
            return
        }
        environment.replies[1].succeed(.array([.integer(0), .integer(0), .integer(250_000)]))
        Self.check(try Self.value(denied).resume(&refused), is: .respond(429, .rateLimited))

        var open = Self.request()
        guard case .wait(let failedOpen) = policies["shared"]!.evaluate(&open, environment: environment) else {
            Issue.record("no wait")
            return
        }
        environment.replies[2].fail(ChannelError.ioOnClosedChannel)
        Self.check(try Self.value(failedOpen).resume(&open), is: .proceed)
        var closed = Self.request()
        guard case .wait(let failedClosed) = policies["closed"]!.evaluate(&closed, environment: environment) else {
            Issue.record("no wait")
            return
        }
        environment.replies[3].fail(ChannelError.ioOnClosedChannel)
        Self.check(try Self.value(failedClosed).resume(&closed), is: .respond(503, .rateLimitStoreUnavailable))
        #expect(environment.events.filter { if case .rateLimitStoreFailure = $0 { true } else { false } }.count == 2)
        #expect(environment.decisions == ["local:allowed", "local:allowed", "local:limited", "local:allowed", "shared:allowed", "shared:limited", "shared:error", "closed:error"])
    }

    /// draft-ietf-httpapi-ratelimit-headers: `q` is what can be spent at once (the burst), so `r`
    /// never exceeds it; `w` the time to earn it; `t` the seconds until the bucket is full,
    /// the same on a refusal as on a pass; `Retry-After` the seconds until one request passes.
    @Test func rateLimitFieldsMeanTheSameOnEveryResponse() throws {
        let policies = try Self.policies("- {name: burst, rateLimit: {requests: 10, per: 1s, burst: 30}}")
        let environment = Environment()
        var first = Self.request()
        Self.check(policies["burst"]!.evaluate(&first, environment: environment), is: .proceed)
        #expect(first.responseEdits.add.first { $0.0 == "ratelimit-policy" }?.1 == #""burst";q=30;w=3"#)
        #expect(first.responseEdits.add.first { $0.0 == "ratelimit" }?.1 == #""burst";r=29;t=1"#)
        var remaining: [Int] = []
        var refusal: PolicyVerdict?
        for _ in 0..<30 {
            var request = Self.request()
            let verdict = policies["burst"]!.evaluate(&request, environment: environment)
            if case .respond = verdict {
                refusal = verdict
                break
            }
            let field = request.responseEdits.add.first { $0.0 == "ratelimit" }!.1
            remaining.append(Int(field.split(separator: ";")[1].dropFirst(2))!)
        }
        #expect(remaining.allSatisfy { $0 <= 30 } && remaining.last == 0)
        guard case .respond(let response) = refusal else {
            Issue.record("no refusal")
            return
        }
        let headers = Dictionary(response.extraHeaders, uniquingKeysWith: { first, _ in first })
        #expect(headers["retry-after"] == "1")
        // Empty: 30 tokens at 10 a second are 3 seconds away.
        #expect(headers["ratelimit"] == #""burst";r=0;t=3"#)

        #expect(RateLimitFields.policy(name: "m", bucket: TokenBucket(requests: 5, per: .seconds(60))) == #""m";q=5;w=60"#)
        #expect(RateLimitFields.policy(name: "h", bucket: TokenBucket(requests: 100, per: .seconds(1))) == #""h";q=100;w=1"#)
        #expect(RateLimitFields.retryAfter(.milliseconds(1)) == 1)
        #expect(RateLimitFields.retryAfter(.milliseconds(11_500)) == 12)
    }

    /// A refusal lists every rate limit of the route in `RateLimit-Policy`, and `RateLimit`
    /// names the one that refused; a shadow limit counts and tells but lets through; the
    /// refusal's status is the policy's.
    @Test func rateLimitRefusalsShadowModeAndStatus() throws {
        let policies = try Self.policies(
            """
            - {name: wide, rateLimit: {requests: 100, per: 1s}}
            - {name: narrow, rateLimit: {requests: 1, per: 1m, status: 503}}
            - {name: shadow, rateLimit: {requests: 1, per: 1m, enforce: false}}
            """)
        let environment = Environment()
        let route = [#""wide";q=100;w=1"#, #""narrow";q=1;w=60"#]
        func run(_ names: [String]) -> (PolicyVerdict, PolicyRequest) {
            var request = Self.request()
            request.routeRateLimits = route
            for name in names {
                let verdict = policies[name]!.evaluate(&request, environment: environment)
                guard case .proceed = verdict else { return (verdict, request) }
            }
            return (.proceed, request)
        }
        #expect(run(["wide", "narrow"]).1.responseEdits.add.filter { $0.0 == "ratelimit" }.count == 2)
        let (refused, _) = run(["wide", "narrow"])
        guard case .respond(let response) = refused else {
            Issue.record("not refused")
            return
        }
        #expect(response.status.code == 503)
        #expect(response.reason == .rateLimited)
        #expect(response.extraHeaders.filter { $0.0 == "ratelimit-policy" }.map(\.1) == route)
        #expect(response.extraHeaders.filter { $0.0 == "ratelimit" }.map(\.1) == [#""narrow";r=0;t=60"#])

        let (first, passed) = run(["shadow"])
        Self.check(first, is: .proceed)
        #expect(passed.note == nil)
        let (second, shadowed) = run(["shadow"])
        Self.check(second, is: .proceed)
        #expect(shadowed.note == .rateLimitShadow)
        #expect(shadowed.responseEdits.add.contains { $0 == ("ratelimit", #""shadow";r=0;t=60"#) })
        #expect(environment.decisions.suffix(2) == ["shadow:allowed", "shadow:limited"])
        #expect(throws: (any Error).self) { try Self.policies("- {name: odd, rateLimit: {requests: 1, per: 1s, status: 302}}") }
    }

    @Test func apiKeyAndACLIdentifyTheConsumer() throws {
        let policies = try Self.policies(
            """
            - {name: key, apiKey: {consumers: [{name: ci, groups: [builders], keySHA256: [\(APIKeys.digest(of: "k"))]}]}}
            - {name: builders, acl: {allow: [builders]}}
            - {name: admins, acl: {allow: [admins]}}
            """)
        var request = Self.request(headers: [("x-api-key", "k")])
        Self.check(policies["key"]!.evaluate(&request, environment: Environment()), is: .proceed)
        #expect(request.upstream.headers["x-consumer"] == ["ci"])
        #expect(request.upstream.headers["x-api-key"].isEmpty)
        Self.check(policies["builders"]!.evaluate(&request, environment: Environment()), is: .proceed)
        Self.check(policies["admins"]!.evaluate(&request, environment: Environment()), is: .respond(403, .forbidden))
    }

    @Test func transformRewritesTheUpstreamHeadAndValidateSetsBodyRules() throws {
        let policies = try Self.policies(
            """
            - name: t
              transform:
                stripPrefix: /app
                rewrite: {regex: "^/x$", replacement: /y}
                requestHeaders: {set: [{name: X-Env, value: test}], remove: [cookie]}
                responseHeaders: {add: [{name: X-Served-By, value: gantry}]}
            - {name: v, validate: {maxBodySize: 1KiB, jsonSchema: '{"type": "object"}'}}
            """)
        var request = Self.request(headers: [("cookie", "a=b")])
        Self.check(policies["t"]!.evaluate(&request, environment: Environment()), is: .proceed)
        #expect(request.upstream.uri == "/y?a=1")
        #expect(request.upstream.headers["x-env"] == ["test"])
        #expect(request.upstream.headers["cookie"].isEmpty)
        #expect(request.original.uri == "/app/x?a=1")
        #expect(request.responseEdits.add.map(\.0) == ["X-Served-By"])
        Self.check(policies["v"]!.evaluate(&request, environment: Environment()), is: .proceed)
        #expect(request.maxBodySize == 1024)
        #expect(request.bodySchema != nil)
    }

    @Test func redirectFillsInThePathAndQuery() throws {
        let policy = try #require(Self.policies("- {name: p, redirect: {location: \"https://example.com/new${path}${query}\"}}")["p"])
        var request = Self.request()
        guard case .respond(let response) = policy.evaluate(&request, environment: Environment()) else {
            Issue.record("no answer")
            return
        }
        #expect(response.status == .permanentRedirect)
        #expect(response.extraHeaders.first { $0.0 == "location" }?.1 == "https://example.com/new/app/x?a=1")
    }

    // MARK: Identity

    /// A policy is the same across reloads when its entry says the same thing, however it is
    /// laid out, and the files it reads are the same; anything else makes it a new policy.
    @Test func identityFollowsTheDefinitionNotTheLayout() throws {
        func identity(_ yaml: String) throws -> PolicyIdentity {
            let snapshot = try ConfigLoader.load(
                yaml: "loadBalancer: {listeners: [{name: http, port: 8080}]}\ngateway:\n  policies:\n\(yaml)", file: "gantry.yaml", coreCount: 1
            ).get().snapshot
            return snapshot.policies[0].identity
        }
        let flow = try identity("    - {name: limit, rateLimit: {requests: 5, per: 1s}}")
        let block = try identity("    - name: limit\n      rateLimit:\n        per: 1s\n        requests: 5")
        #expect(flow == block)
        #expect(try identity("    - {name: limit, rateLimit: {requests: 6, per: 1s}}") != flow)
        #expect(try identity("    - {name: other, rateLimit: {requests: 5, per: 1s}}") != flow)
    }
}
