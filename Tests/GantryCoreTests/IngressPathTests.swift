import Testing

@testable import GantryCore

/// The examples table of the Kubernetes Ingress documentation ("Examples" under "Path types"),
/// row by row: the rules of a host, a request path, and the rule that must win (nil: no match).
struct IngressPathTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let rules: [(PathType, String)]
        let request: String
        let winner: Int?
        var testDescription: String { "\(rules.map { "\($0.0.rawValue) \($0.1)" }) ← \(request)" }
    }

    static let kubernetesTable: [Row] = [
        Row(rules: [(.prefix, "/")], request: "/anything/at/all", winner: 0),
        Row(rules: [(.exact, "/foo")], request: "/foo", winner: 0),
        Row(rules: [(.exact, "/foo")], request: "/bar", winner: nil),
        Row(rules: [(.exact, "/foo")], request: "/foo/", winner: nil),
        Row(rules: [(.exact, "/foo/")], request: "/foo", winner: nil),
        Row(rules: [(.prefix, "/foo")], request: "/foo", winner: 0),
        Row(rules: [(.prefix, "/foo")], request: "/foo/", winner: 0),
        Row(rules: [(.prefix, "/foo/")], request: "/foo", winner: 0),
        Row(rules: [(.prefix, "/foo/")], request: "/foo/", winner: 0),
        Row(rules: [(.prefix, "/aaa/bb")], request: "/aaa/bbb", winner: nil),
        Row(rules: [(.prefix, "/aaa/bbb")], request: "/aaa/bbb", winner: 0),
        Row(rules: [(.prefix, "/aaa/bbb/")], request: "/aaa/bbb", winner: 0),
        Row(rules: [(.prefix, "/aaa/bbb")], request: "/aaa/bbb/", winner: 0),
        Row(rules: [(.prefix, "/aaa/bbb")], request: "/aaa/bbb/ccc", winner: 0),
        Row(rules: [(.prefix, "/aaa/bbb")], request: "/aaa/bbbxyz", winner: nil),
        Row(rules: [(.prefix, "/"), (.prefix, "/aaa")], request: "/aaa/ccc", winner: 1),
        Row(rules: [(.prefix, "/"), (.prefix, "/aaa"), (.prefix, "/aaa/bbb")], request: "/aaa/bbb", winner: 2),
        Row(rules: [(.prefix, "/"), (.prefix, "/aaa"), (.prefix, "/aaa/bbb")], request: "/ccc", winner: 0),
        Row(rules: [(.prefix, "/aaa")], request: "/ccc", winner: nil),
        Row(rules: [(.prefix, "/foo"), (.exact, "/foo")], request: "/foo", winner: 1),
        // Beyond the table: Exact beats Prefix only at equal length; longer Prefix wins over shorter Exact.
        Row(rules: [(.exact, "/foo"), (.prefix, "/foo/bar")], request: "/foo/bar", winner: 1),
        Row(rules: [(.prefix, "/foo"), (.exact, "/foo/")], request: "/foo/", winner: 1),
        Row(rules: [(.prefix, "/foo"), (.prefix, "/foo/")], request: "/foo/x", winner: 0),  // same rule after trimming: file order
    ]

    @Test(arguments: kubernetesTable)
    func kubernetesExamples(_ row: Row) {
        let rules = row.rules.enumerated().map { index, rule in
            RouteRule(index: index, name: "r\(index)", host: .any, path: PathRule(type: rule.0, path: rule.1), service: 0)
        }
        let table = RouteTable(rules: rules)
        let matched = table.match(host: "example.com", path: Substring(row.request), method: "GET", headers: HeaderList())
        #expect(matched?.index == row.winner)
    }

    @Test func prefixRuleDropsTrailingSlashes() {
        #expect(PathRule(type: .prefix, path: "/foo///").path == "/foo")
        #expect(PathRule(type: .prefix, path: "/").path == "/")
        #expect(PathRule(type: .exact, path: "/foo/").path == "/foo/")
    }

    @Test func matchingIsCaseSensitive() {
        #expect(!PathRule(type: .prefix, path: "/App").matches("/app"))
        #expect(!PathRule(type: .exact, path: "/app").matches("/APP"))
    }
}

struct HostRuleTests {
    @Test(arguments: [
        ("example.com", "example.com", true),
        ("example.com", "www.example.com", false),
        ("*.example.com", "foo.example.com", true),
        ("*.example.com", "example.com", false),  // a wildcard needs one label
        ("*.example.com", "bar.foo.example.com", false),  // and only one
        ("*.example.com", ".example.com", false),
        ("*.foo.com", "bar.foo.com", true),
        ("*.foo.com", "baz.bar.foo.com", false),
        ("Example.COM", "example.com", true),
    ])
    func hostPatterns(rule: String, host: String, matches: Bool) {
        let pattern = HostPattern(rule: rule)!
        #expect(pattern.matches(Substring(host)) == matches)
    }

    @Test(arguments: [
        ("Example.COM:8080", "example.com"),
        ("example.com", "example.com"),
        ("example.com.", "example.com"),
        ("[::1]:8443", "[::1]"),
        ("127.0.0.1:80", "127.0.0.1"),
    ])
    func normalization(header: String, host: String) {
        #expect(HostPattern.normalize(Substring(header)) == Substring(host))
    }

    @Test func invalidPatterns() {
        #expect(HostPattern(rule: "*.") == nil)
        #expect(HostPattern(rule: "foo.*.com") == nil)
        #expect(HostPattern(rule: "-bad.com") == nil)
        #expect(HostPattern(rule: nil) == .any)
    }
}
