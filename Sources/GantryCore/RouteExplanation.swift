/// What the matcher did with one request: the winning rule, and every rule with its outcome.
public struct RouteExplanation: Sendable {
    public struct Step: Sendable {
        public let rule: RouteRule
        public let outcome: RuleOutcome
    }

    public let host: String
    public let path: String
    public let method: String
    public let matched: RouteRule?
    /// Every rule, in the order the matcher looked at them; rules of other hosts last.
    public let steps: [Step]
}

private final class RecordingTracer: RouteTracer {
    var steps: [RouteExplanation.Step] = []
    func considered(_ rule: RouteRule, _ outcome: RuleOutcome) {
        steps.append(.init(rule: rule, outcome: outcome))
    }
}

extension RouteTable {
    /// Runs ``match(host:path:method:headers:tracer:)`` — the proxy's own matcher — and records
    /// why each rule did or did not take the request.
    public func explain(host rawHost: String, target: String, method: String, headers: some HeaderLookup)
        -> Result<RouteExplanation, RequestTarget.Problem>
    {
        let parsed: RequestTarget
        switch RequestTarget.parse(target) {
        case .success(let value): parsed = value
        case .failure(let problem): return .failure(problem)
        }
        let host = HostPattern.normalize(Substring(rawHost))
        let tracer = RecordingTracer()
        let matched = match(host: host, path: parsed.path, query: parsed.query, method: method.uppercased(), headers: headers, tracer: tracer)
        let seen = Set(tracer.steps.map(\.rule.index))
        let others = rules.filter { !seen.contains($0.index) }.map { RouteExplanation.Step(rule: $0, outcome: .hostMismatch) }
        return .success(
            RouteExplanation(
                host: String(host), path: String(parsed.path), method: method.uppercased(), matched: matched,
                steps: tracer.steps + others))
    }
}
