import GantryCore

/// Routes: the ingress rules, their matches, their backends and their mirror.
extension SpecCompiler {
    /// `gateway.routes`: the rules, in file order, and what each one sends its requests through.
    mutating func compileRoutes(
        _ specs: [RouteSpec], services: [ServiceSettings], policies: [CompiledPolicy], policyNames: [String: Int], at path: SpecPath
    ) -> ([RouteRule], [RouteSettings]) {
        var rules: [RouteRule] = []
        var settings: [RouteSettings] = []
        var signatures: [String: Int] = [:]
        for (index, spec) in specs.enumerated() {
            let here = path / index
            guard let host = HostPattern(rule: spec.host) else {
                problem(here / "host", "\"\(spec.host ?? "")\" is not a host: write example.com or *.example.com")
                continue
            }
            guard let rawPath = spec.path else {
                problem(here / "path", "missing required key \"path\"")
                continue
            }
            // `*` is the asterisk-form target of `OPTIONS *` (RFC 9112 §3.2.4), matched exactly.
            guard rawPath == "*" || (rawPath.hasPrefix("/") && !rawPath.contains("?") && !rawPath.contains("#")
                && rawPath.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }))
            else {
                problem(
                    here / "path",
                    "\"\(rawPath)\" is not a path: it must start with / and have no query, fragment or spaces (or be * for OPTIONS *)")
                continue
            }
            let pathRule = PathRule(type: rawPath == "*" ? .exact : spec.pathType ?? .prefix, path: rawPath)
            var methods: [String] = []
            for (position, method) in (spec.methods ?? []).enumerated() {
                if Self.isToken(method) { methods.append(method.uppercased()) } else {
                    problem(here / "methods" / position, "\"\(method)\" is not an HTTP method")
                }
            }
            let headers = compileHeaderMatches(spec.headers ?? [], at: here / "headers")
            let query = compileQueryMatches(spec.queryParams ?? [], at: here / "queryParams")
            let mirror = spec.mirror.flatMap { compileMirror($0, services: services, at: here / "mirror") }
            guard let (service, split) = compileBackends(spec, services: services, at: here) else { continue }
            let name = spec.name ?? "\(host == .any ? "" : host.description)\(pathRule.path)"
            let signature = "\(host)|\(pathRule)|\(methods.sorted())|\(headers.map(\.description).sorted())|\(query.map(\.description).sorted())"
            if let first = signatures[signature] {
                problem(here, "this rule repeats gateway.routes[\(first)] and would never match")
            }
            signatures[signature] = signatures[signature] ?? index
            rules.append(
                RouteRule(
                    index: rules.count, name: name, host: host, path: pathRule, methods: methods, headers: headers, query: query,
                    service: service.index, split: split, mirror: mirror))
            let routePolicies = compileRoutePolicies(spec.policies ?? [], policies: policies, byName: policyNames, at: here / "policies")
            var route = RouteSettings(
                responseTimeout: positive(spec.timeout, default: service.responseTimeout, at: here / "timeout"),
                retry: compileRetry(spec.retries, default: service.retry, at: here / "retries"),
                policies: routePolicies,
                rateLimits: routePolicies.compactMap { (policies[$0].policy as? RateLimitPolicy)?.policyField })
            if let upgrades = spec.upgrades {
                for (position, name) in upgrades.enumerated() where !Self.isToken(name) || name.lowercased() == "h2c" {
                    problem(
                        here / "upgrades" / position,
                        name.lowercased() == "h2c"
                            ? "h2c is not an upgrade gantry forwards: HTTP/2 is spoken to clients on the listener itself (http2: true)"
                            : "\"\(name)\" is not a protocol name, e.g. websocket")
                }
                route.upgrades = upgrades.map { $0.lowercased() }
            }
            if let tunnel = spec.tunnel {
                route.tunnel.idleTimeout = positive(tunnel.idleTimeout, default: route.tunnel.idleTimeout, at: here / "tunnel" / "idleTimeout")
                if tunnel.maxDuration != nil {
                    route.tunnel.maxDuration = positive(tunnel.maxDuration, default: .seconds(0), at: here / "tunnel" / "maxDuration")
                }
            }
            settings.append(route)
        }
        return (rules, settings)
    }

    /// `{service, percent}`: the shadow service, and the share of requests copied to it.
    private mutating func compileMirror(_ spec: MirrorSpec, services: [ServiceSettings], at path: SpecPath) -> RouteMirror? {
        let percent = spec.percent ?? 100
        if !(0...100).contains(percent) { problem(path / "percent", "must be between 0 and 100") }
        guard let name = spec.service else {
            problem(path / "service", "missing required key \"service\"")
            return nil
        }
        guard let shadow = services.first(where: { $0.name == name }) else {
            problem(path / "service", "unknown service \"\(name)\"" + Suggestion.hint(for: name, among: services.map(\.name)))
            return nil
        }
        return RouteMirror(service: shadow.index, percent: percent)
    }

    /// `service`, or `backends` with weights (and `sticky`): the first service, and the split.
    private mutating func compileBackends(_ spec: RouteSpec, services: [ServiceSettings], at here: SpecPath)
        -> (ServiceSettings, BackendSplit?)?
    {
        func named(_ name: String, at path: SpecPath) -> ServiceSettings? {
            if let service = services.first(where: { $0.name == name }) { return service }
            problem(path, "unknown service \"\(name)\"" + Suggestion.hint(for: name, among: services.map(\.name)))
            return nil
        }
        switch (spec.service, spec.backends) {
        case (let name?, nil):
            if spec.sticky != nil { problem(here / "sticky", "sticky needs backends: one service has nothing to stick to") }
            return named(name, at: here / "service").map { ($0, nil) }
        case (nil, let backends?) where !backends.isEmpty:
            var split: [BackendSplit.Backend] = []
            var first: ServiceSettings?
            for (index, backend) in backends.enumerated() {
                let path = here / "backends" / index
                guard let name = backend.service else {
                    problem(path / "service", "missing required key \"service\"")
                    continue
                }
                guard let service = named(name, at: path / "service"),
                    let weight = within(backend.weight ?? 1, 0...1_000_000, at: path / "weight")
                else { continue }
                first = first ?? service
                split.append(BackendSplit.Backend(service: service.index, weight: weight))
            }
            guard let first, split.count == backends.count else { return nil }
            guard split.contains(where: { $0.weight > 0 }) else {
                problem(here / "backends", "every weight is 0: no request could be sent; give one backend a weight above 0")
                return nil
            }
            var sticky: BackendSplit.Sticky?
            if let header = spec.sticky?.header {
                if !Self.isToken(header) { problem(here / "sticky" / "header", "\"\(header)\" is not a valid header name") }
                sticky = .header(header.lowercased())
            } else if let cookie = spec.sticky?.cookie {
                sticky = .cookie(cookie)
            }
            return (first, BackendSplit(backends: split, sticky: sticky))
        case (nil, _):
            problem(here / "service", "missing required key \"service\" (or backends: [{service: NAME, weight: N}, …])")
            return nil
        case (_?, _?):
            problem(here / "backends", "set either service or backends, not both")
            return nil
        }
    }

    private mutating func compileQueryMatches(_ specs: [QueryMatchSpec], at path: SpecPath) -> [QueryMatch] {
        var result: [QueryMatch] = []
        for (index, spec) in specs.enumerated() {
            let here = path / index
            guard let name = spec.name, !name.isEmpty else {
                problem(here / "name", "missing required key \"name\"")
                continue
            }
            if let value = spec.value {
                result.append(QueryMatch(name: name, kind: .exact(value)))
            } else if let source = spec.regex {
                do {
                    result.append(QueryMatch(name: name, kind: .regex(try RegexPattern(source))))
                } catch {
                    problem(here / "regex", "invalid regular expression: \(error)")
                }
            }
        }
        return result
    }

    private mutating func compileHeaderMatches(_ specs: [HeaderMatchSpec], at path: SpecPath) -> [HeaderMatch] {
        var result: [HeaderMatch] = []
        for (index, spec) in specs.enumerated() {
            let here = path / index
            guard let name = spec.name, Self.isToken(name) else {
                problem(here / "name", spec.name.map { "\"\($0)\" is not a valid header name" } ?? "missing required key \"name\"")
                continue
            }
            if let value = spec.value {
                result.append(HeaderMatch(name: name, kind: .exact(value)))
            } else if let source = spec.regex {
                do {
                    result.append(HeaderMatch(name: name, kind: .regex(try RegexPattern(source))))
                } catch {
                    problem(here / "regex", "invalid regular expression: \(error)")
                }
            } else if spec.present == true {
                result.append(HeaderMatch(name: name, kind: .present))
            } else {
                problem(here / "present", "present: false is not supported; omit the header condition instead")
            }
        }
        return result
    }
}
