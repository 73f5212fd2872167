import Testing

@testable import GantryCore

struct RouteTableTests {
    static func rule(
        _ index: Int, host: String? = nil, _ path: String, type: PathType = .prefix, methods: [String] = [],
        headers: [HeaderMatch] = [], service: Int = 0
    ) -> RouteRule {
        RouteRule(
            index: index, name: "r\(index)", host: HostPattern(rule: host)!, path: PathRule(type: type, path: path),
            methods: methods, headers: headers, service: service)
    }

    let table = RouteTable(rules: [
        rule(0, host: "example.com", "/app", service: 1),
        rule(1, host: "example.com", "/auth", service: 2),
        rule(2, host: "*.example.com", "/", service: 3),
        rule(3, "/", service: 4),
        rule(4, host: "example.com", "/app/admin", methods: ["POST"], service: 5),
        rule(5, host: "example.com", "/app/beta", headers: [HeaderMatch(name: "X-Canary", kind: .exact("1"))], service: 6),
        rule(6, host: "example.com", "/app/beta", service: 7),
    ])

    func service(_ host: String, _ path: String, method: String = "GET", headers: [(String, String)] = []) -> Int? {
        table.match(
            host: HostPattern.normalize(Substring(host)), path: Substring(path), method: method,
            headers: HeaderList(headers.map { (name: $0.0, value: $0.1) }))?.service
    }

    @Test func exactHostThenWildcardThenAnyHost() {
        #expect(service("example.com", "/app/dashboard") == 1)
        #expect(service("EXAMPLE.com:8443", "/auth/login") == 2)
        #expect(service("api.example.com", "/app") == 3)
        #expect(service("other.org", "/app") == 4)
    }

    /// A table without host rules never reads the host, whatever it is, so the proxy skips
    /// normalising it.
    @Test func onlyTablesWithHostRulesReadTheHost() {
        #expect(table.readsHost)
        #expect(RouteTable(rules: [Self.rule(0, host: "*.example.com", "/")]).readsHost)
        let hostless = RouteTable(rules: [Self.rule(0, "/app", service: 1), Self.rule(1, "/", service: 2)])
        #expect(!hostless.readsHost)
        for host in ["example.com", "EXAMPLE.com:8443", "[::1]:80", ""] {
            let service = hostless.match(host: Substring(host), path: "/app/x", method: "GET", headers: HeaderList([]))?.service
            #expect(service == 1)
        }
    }

    @Test func hostWithoutMatchingPathFallsThroughToLessSpecificHosts() {
        #expect(service("example.com", "/static/logo.png") == 4)
    }

    @Test func methodMatch() {
        #expect(service("example.com", "/app/admin", method: "POST") == 5)
        #expect(service("example.com", "/app/admin", method: "GET") == 1)
        // Only a table with a method rule needs the request's method spelled.
        #expect(table.readsMethod)
        #expect(!RouteTable(rules: [Self.rule(0, "/app", service: 1), Self.rule(1, "/", service: 2)]).readsMethod)
    }

    @Test func headerMatchWinsOverTheSamePathWithout() {
        #expect(service("example.com", "/app/beta", headers: [("x-canary", "1")]) == 6)
        #expect(service("example.com", "/app/beta", headers: [("X-Canary", "0")]) == 7)
        #expect(service("example.com", "/app/beta") == 7)
    }

    /// Gateway API `HTTPQueryParamMatch`: case-sensitive names and values, the first value of
    /// a repeated name, percent-decoded; and its precedence: an exact path, then the longest
    /// prefix, then a method match, then more header matches, then more query matches, then
    /// file order.
    @Test func queryMatchesAndGatewayAPIPrecedence() throws {
        let table = RouteTable(rules: [
            Self.rule(0, "/api", service: 0),
            RouteRule(
                index: 1, name: "v2", host: .any, path: PathRule(type: .prefix, path: "/api"),
                query: [QueryMatch(name: "version", kind: .exact("2"))], service: 1),
            RouteRule(
                index: 2, name: "v2-debug", host: .any, path: PathRule(type: .prefix, path: "/api"),
                query: [QueryMatch(name: "version", kind: .exact("2")), QueryMatch(name: "debug", kind: .regex(try RegexPattern("[0-9]+")))],
                service: 2),
            RouteRule(
                index: 3, name: "canary", host: .any, path: PathRule(type: .prefix, path: "/api"),
                headers: [HeaderMatch(name: "x-canary", kind: .present)], service: 3),
            Self.rule(4, "/api", methods: ["DELETE"], service: 4),
        ])
        func service(_ query: String?, method: String = "GET", headers: [(String, String)] = []) -> Int? {
            table.match(
                host: "a", path: "/api/x", query: query.map { Substring($0) }, method: method,
                headers: HeaderList(headers.map { (name: $0.0, value: $0.1) }))?.service
        }
        #expect(service(nil) == 0)
        #expect(service("version=2") == 1)
        #expect(service("Version=2") == 0, "names are case-sensitive")
        #expect(service("version=2&debug=17") == 2, "more query matches win")
        #expect(service("version=2&debug=on") == 1)
        #expect(service("version=1&version=2") == 0, "the first value counts")
        #expect(service("v%65rsion=%32") == 1, "percent-decoded")
        #expect(service("version=2", headers: [("X-Canary", "1")]) == 3, "a header match outranks query matches")
        #expect(service("version=2", method: "DELETE", headers: [("X-Canary", "1")]) == 4, "a method match outranks header matches")
        // An exact path outranks any prefix.
        let exact = RouteTable(rules: [Self.rule(0, "/a/b", service: 0), Self.rule(1, "/a/b", type: .exact, service: 1)])
        #expect(exact.match(host: "a", path: "/a/b", method: "GET", headers: HeaderList([]))?.service == 1)
    }

    /// A split sends each backend its weight's share of draws, and a sticky key's value always
    /// to the same backend.
    @Test func backendSplitsFollowTheirWeights() {
        let split = BackendSplit(backends: [.init(service: 7, weight: 95), .init(service: 8, weight: 5), .init(service: 9, weight: 0)])
        let counts = (0..<UInt64(1000)).reduce(into: [Int: Int]()) { $0[split.service(for: $1), default: 0] += 1 }
        #expect(counts == [7: 950, 8: 50])
        let users = (0..<200).map { "user-\($0)" }
        #expect(users.allSatisfy { split.service(forKey: $0) == split.service(forKey: $0) })
        let placed = Set(users.map { split.service(forKey: $0) })
        #expect(placed.isSubset(of: [7, 8]) && placed.contains(8), "hashing spreads keys over the weighted backends")
        #expect(split.percent(of: split.backends[1]) == 5)
    }

    @Test func noRuleNoMatch() {
        let hostOnly = RouteTable(rules: [Self.rule(0, host: "example.com", "/app")])
        #expect(hostOnly.match(host: "example.com", path: "/", method: "GET", headers: HeaderList()) == nil)
        #expect(hostOnly.match(host: "other.com", path: "/app", method: "GET", headers: HeaderList()) == nil)
    }

    @Test func headerMatchKinds() throws {
        let headers = HeaderList([(name: "X-Version", value: "v2.1")])
        #expect(HeaderMatch(name: "x-version", kind: .exact("v2.1")).matches(headers))
        #expect(!HeaderMatch(name: "x-version", kind: .exact("v2")).matches(headers))
        #expect(HeaderMatch(name: "X-VERSION", kind: .present).matches(headers))
        #expect(!HeaderMatch(name: "x-other", kind: .present).matches(headers))
        #expect(HeaderMatch(name: "x-version", kind: .regex(try RegexPattern("v2\\.[0-9]+"))).matches(headers))
        #expect(!HeaderMatch(name: "x-version", kind: .regex(try RegexPattern("v2"))).matches(headers))  // whole value
    }

    @Test func explainUsesTheSameMatcherAndSaysWhy() throws {
        let explanation = try table.explain(
            host: "example.com", target: "/app/admin?x=1", method: "get", headers: HeaderList()
        ).get()
        #expect(explanation.matched?.index == 0)
        let outcomes = Dictionary(uniqueKeysWithValues: explanation.steps.map { ($0.rule.index, $0.outcome) })
        #expect(outcomes[4] == .methodMismatch)
        #expect(outcomes[0] == .matched)
        #expect(outcomes[1] == .pathMismatch)
        #expect(outcomes[2] == .hostMismatch)
        #expect(outcomes[3] == .shadowed)
        #expect(explanation.steps.count == table.rules.count)
    }

    @Test func explainRejectsTargetsTheProxyRejects() {
        #expect(throws: RequestTarget.Problem.escapesRoot) {
            try table.explain(host: "example.com", target: "/../etc", method: "GET", headers: HeaderList()).get()
        }
    }
}

struct RequestTargetTests {
    @Test(arguments: [
        ("/app/dashboard", "/app/dashboard", nil as String?, false),
        ("/app/dashboard?tab=1&x", "/app/dashboard", "tab=1&x", false),
        ("/app/../auth/login", "/auth/login", nil, true),
        ("/app/./x", "/app/x", nil, true),
        ("/app//x", "/app/x", nil, true),
        ("/app/x/..", "/app/", nil, true),
        ("/a/.../b", "/a/.../b", nil, false),
        ("/a/..b/c", "/a/..b/c", nil, false),
        ("http://Example.com:8080/app?q", "/app", "q", true),
        ("http://example.com", "/", nil, true),
        ("/", "/", nil, false),
    ])
    func parsing(target: String, path: String, query: String?, rewritten: Bool) throws {
        let parsed = try RequestTarget.parse(target).get()
        #expect(parsed.path == Substring(path))
        #expect(parsed.query.map(String.init) == query)
        #expect(parsed.rewritten == rewritten)
    }

    @Test func rejects() {
        #expect(throws: RequestTarget.Problem.escapesRoot) { try RequestTarget.parse("/../x").get() }
        #expect(throws: RequestTarget.Problem.escapesRoot) { try RequestTarget.parse("/a/../../x").get() }
        #expect(throws: RequestTarget.Problem.notOriginForm) { try RequestTarget.parse("*").get() }
        #expect(throws: RequestTarget.Problem.notOriginForm) { try RequestTarget.parse("ftp://x/").get() }
        #expect(throws: RequestTarget.Problem.empty) { try RequestTarget.parse("").get() }
    }

    @Test func forwardedTargetKeepsTheQuery() throws {
        #expect(try RequestTarget.parse("/a/../b?x=1").get().forwarded == "/b?x=1")
    }
}
