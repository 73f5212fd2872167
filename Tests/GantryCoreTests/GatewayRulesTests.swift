import Testing

@testable import GantryCore

struct CIDRTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.1.2.3", true), ("10.0.0.0/8", "11.0.0.1", false), ("192.168.1.0/24", "192.168.1.255", true),
        ("192.168.1.0/24", "192.168.2.0", false), ("127.0.0.1", "127.0.0.1", true), ("127.0.0.1", "127.0.0.2", false),
        ("0.0.0.0/0", "8.8.8.8", true), ("0.0.0.0/0", "::1", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true), ("2001:db8::/32", "2001:db9::1", false), ("::1/128", "::1", true),
        ("::/0", "fe80::1", true), ("10.0.0.0/8", "::ffff:10.0.0.1", true), ("2001:db8::/126", "2001:db8::3", true),
        ("2001:db8::/126", "2001:db8::4", false), ("fe80::/10", "[fe80::1%eth0]", true),
    ])
    func membership(network: String, address: String, inside: Bool) throws {
        let cidr = try #require(CIDR(network))
        #expect(cidr.contains(address) == inside)
    }

    @Test(arguments: ["10.0.0.0/33", "10.0.0/8", "256.0.0.1", "01.2.3.4", "2001:db8::/129", "1:2:3:4:5:6:7:8:9", "1::2::3", "x", "10.0.0.0/"])
    func rejectsNonsense(text: String) {
        #expect(CIDR(text) == nil)
    }
}

struct CORSRulesTests {
    let rules = CORSRules(
        origins: ["https://app.example.com"], methods: ["get", "PUT"], headers: ["Authorization"], exposedHeaders: ["X-Request-ID"],
        credentials: true, maxAge: 600)

    @Test func preflights() {
        let allowed = rules.evaluate(method: "OPTIONS", origin: "https://app.example.com", requestMethod: "PUT", requestHeaders: "Authorization")
        guard case .preflight(true, let headers) = allowed else {
            Issue.record("refused: \(allowed)")
            return
        }
        #expect(headers.map(\.0) == [
            "access-control-allow-origin", "vary", "access-control-allow-credentials", "access-control-allow-methods",
            "access-control-allow-headers", "access-control-max-age",
        ])
        #expect(rules.evaluate(method: "OPTIONS", origin: "https://app.example.com", requestMethod: "DELETE", requestHeaders: nil) == .preflight(allowed: false, headers: []))
        #expect(rules.evaluate(method: "OPTIONS", origin: "https://app.example.com", requestMethod: "GET", requestHeaders: "X-Other") == .preflight(allowed: false, headers: []))
        #expect(rules.evaluate(method: "OPTIONS", origin: "https://evil.example", requestMethod: "GET", requestHeaders: nil) == .preflight(allowed: false, headers: []))
    }

    @Test func actualRequestsAndWildcards() {
        #expect(rules.evaluate(method: "GET", origin: nil, requestMethod: nil, requestHeaders: nil) == .notCORS)
        #expect(rules.evaluate(method: "GET", origin: "https://evil.example", requestMethod: nil, requestHeaders: nil) == .actual(headers: []))
        let any = CORSRules(origins: ["*"], methods: ["GET"], headers: [], exposedHeaders: [], credentials: false, maxAge: 60)
        #expect(any.evaluate(method: "GET", origin: "https://x.example", requestMethod: nil, requestHeaders: nil) == .actual(headers: [("access-control-allow-origin", "*")]))
        // With credentials, `*` is never sent: the origin is echoed.
        let anyWithCredentials = CORSRules(origins: ["*"], methods: ["GET"], headers: [], exposedHeaders: [], credentials: true, maxAge: 60)
        guard case .actual(let headers) = anyWithCredentials.evaluate(method: "GET", origin: "https://x.example", requestMethod: nil, requestHeaders: nil) else {
            Issue.record("not an actual request")
            return
        }
        #expect(headers.first?.1 == "https://x.example")
    }
}

struct RewritePatternTests {
    @Test func capturesAreSubstituted() throws {
        let pattern = try RewritePattern("^/v1/([a-z]+)/(\\d+)$")
        #expect(pattern.rewrite("/v1/orders/42", with: "/v2/$1?id=$2") == "/v2/orders?id=42")
        #expect(pattern.rewrite("/v1/orders/x", with: "/v2/$1") == nil)
        #expect(pattern.rewrite("/v1/orders/42", with: "/cost/$$/$9") == "/cost/$$/")
    }

    @Test func apiKeyDigests() {
        let keys = APIKeys([(APIKeys.Consumer(name: "acme", groups: ["partners"]), [APIKeys.digest(of: "secret")])])
        #expect(APIKeys.digest(of: "secret") == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b")
        #expect(keys.consumer(presenting: "secret")?.name == "acme")
        #expect(keys.consumer(presenting: "Secret") == nil)
    }
}
