/// One compiled ingress rule. A class: every proxied request carries its rule along, and a
/// reference costs one retain where the struct cost one per field.
public final class RouteRule: Sendable {
    /// Position in the file's `gateway.routes`, which is also the rule's ID.
    public let index: Int
    public let name: String
    public let host: HostPattern
    public let path: PathRule
    /// Uppercased methods, or empty for any method.
    public let methods: [String]
    public let headers: [HeaderMatch]
    public let query: [QueryMatch]
    /// Index of the target service in the snapshot: the only one, or the first of a split.
    public let service: Int
    /// Several services by weight, when the route splits its traffic.
    public let split: BackendSplit?
    public let mirror: RouteMirror?

    public init(
        index: Int, name: String, host: HostPattern, path: PathRule, methods: [String] = [],
        headers: [HeaderMatch] = [], query: [QueryMatch] = [], service: Int, split: BackendSplit? = nil, mirror: RouteMirror? = nil
    ) {
        self.index = index
        self.name = name
        self.host = host
        self.path = path
        self.methods = methods.map { $0.uppercased() }
        self.headers = headers
        self.query = query
        self.service = service
        self.split = split
        self.mirror = mirror
    }
}

/// Why a rule did not take a request, for `gantry routes explain`.
public enum RuleOutcome: Sendable, Equatable {
    case matched
    case hostMismatch
    case pathMismatch
    case methodMismatch
    case headerMismatch(String)
    case queryMismatch(String)
    /// A rule of a more specific host group matched first.
    case shadowed
}

/// Receives the matcher's steps. The proxy passes ``NoTrace`` (compiled away); `routes explain`
/// records them, so both run the very same matcher. Passed by value, not `inout`: a recording
/// tracer is a class. (ThreadSanitizer's instrumentation of an `inout` argument of an empty
/// type reads an address that is not memory, and crashes.)
public protocol RouteTracer {
    func considered(_ rule: RouteRule, _ outcome: RuleOutcome)
}

public struct NoTrace: RouteTracer {
    public init() {}
    @inline(__always) public func considered(_ rule: RouteRule, _ outcome: RuleOutcome) {}
}

/// The ingress rules, grouped by host and sorted by precedence at compile time.
///
/// A request's host selects rule groups in order: the exact host's rules, then the rules of the
/// wildcard covering it, then the rules without a host. Within a group an `Exact` path wins, then
/// the longest matching prefix, then rules with a method match, then rules with more header
/// matches, then rules with more query matches, then file order. The first group with a matching rule decides, so a
/// request for `example.com/x` falls through to host-less rules when `example.com` has none for
/// `/x` (Gateway API precedence; Kubernetes Ingress leaves this to the controller).
public struct RouteTable: Sendable {
    public let rules: [RouteRule]
    private let exact: [String: [Int]]
    private let wildcard: [String: [Int]]
    private let anyHost: [Int]
    /// Whether any rule matches on the method: without one, the proxy need not spell the
    /// request's method for matching.
    public let readsMethod: Bool

    public init(rules: [RouteRule]) {
        self.rules = rules
        self.readsMethod = rules.contains { !$0.methods.isEmpty }
        var exact: [String: [Int]] = [:]
        var wildcard: [String: [Int]] = [:]
        var anyHost: [Int] = []
        for (position, rule) in rules.enumerated() {
            switch rule.host {
            case .exact(let host): exact[host, default: []].append(position)
            case .wildcard(let domain): wildcard[domain, default: []].append(position)
            case .any: anyHost.append(position)
            }
        }
        let order = { (a: Int, b: Int) -> Bool in RouteTable.precedes(rules[a], rules[b]) }
        self.exact = exact.mapValues { $0.sorted(by: order) }
        self.wildcard = wildcard.mapValues { $0.sorted(by: order) }
        self.anyHost = anyHost.sorted(by: order)
    }

    /// Whether any rule names a host: without one, matching never reads the request's host,
    /// and the proxy need not normalise it.
    public var readsHost: Bool { !exact.isEmpty || !wildcard.isEmpty }

    /// Gateway API's precedence: an exact path, then the longest prefix, then a method match,
    /// then the most header matches, then the most query matches, then file order.
    static func precedes(_ a: RouteRule, _ b: RouteRule) -> Bool {
        if a.path.type != b.path.type { return a.path.type == .exact }
        if a.path.specificity != b.path.specificity { return a.path.specificity > b.path.specificity }
        if a.methods.isEmpty != b.methods.isEmpty { return !a.methods.isEmpty }
        if a.headers.count != b.headers.count { return a.headers.count > b.headers.count }
        if a.query.count != b.query.count { return a.query.count > b.query.count }
        return a.index < b.index
    }

    /// The matching rule, or nil (the proxy answers 404).
    /// - Parameters:
    ///   - host: normalised with ``HostPattern/normalize(_:)``.
    ///   - path: normalised with ``RequestTarget/parse(_:)``.
    @inlinable
    public func match(host: Substring, path: Substring, query: Substring? = nil, method: String, headers: some HeaderLookup) -> RouteRule? {
        match(host: host, path: path, query: query, method: method, headers: headers, tracer: NoTrace())
    }

    public func match<T: RouteTracer>(
        host: Substring, path: Substring, query: Substring? = nil, method: String, headers: some HeaderLookup, tracer: T
    ) -> RouteRule? {
        var found: RouteRule?
        // A file without host rules (or without wildcards) skips the lookups, and the `String`s
        // they build.
        if !exact.isEmpty, let group = exact[String(host)] {
            found = firstMatch(in: group, path: path, query: query, method: method, headers: headers, tracer: tracer)
        }
        if !wildcard.isEmpty, let dot = host.firstIndex(of: "."), dot != host.startIndex,
            let group = wildcard[String(host[host.index(after: dot)...])]
        {
            found = firstMatch(in: group, skip: found != nil, path: path, query: query, method: method, headers: headers, tracer: tracer) ?? found
        }
        found = firstMatch(in: anyHost, skip: found != nil, path: path, query: query, method: method, headers: headers, tracer: tracer) ?? found
        return found
    }

    private func firstMatch<T: RouteTracer>(
        in group: [Int], skip: Bool = false, path: Substring, query: Substring?, method: String, headers: some HeaderLookup,
        tracer: T
    ) -> RouteRule? {
        if skip {
            for position in group { tracer.considered(rules[position], .shadowed) }
            return nil
        }
        var winner: RouteRule?
        for position in group {
            let rule = rules[position]
            if winner != nil {
                tracer.considered(rule, .shadowed)
                continue
            }
            let outcome = evaluate(rule, path: path, query: query, method: method, headers: headers)
            tracer.considered(rule, outcome)
            if outcome == .matched {
                winner = rule
                if T.self == NoTrace.self { return rule }
            }
        }
        return winner
    }

    @inline(__always)
    private func evaluate(_ rule: RouteRule, path: Substring, query: Substring?, method: String, headers: some HeaderLookup) -> RuleOutcome {
        guard rule.path.matches(path) else { return .pathMismatch }
        if !rule.methods.isEmpty && !rule.methods.contains(method) { return .methodMismatch }
        for header in rule.headers where !header.matches(headers) {
            return .headerMismatch(header.description)
        }
        for condition in rule.query where !condition.matches(query) {
            return .queryMismatch(condition.description)
        }
        return .matched
    }
}
