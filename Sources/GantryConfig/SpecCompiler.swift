import GantryCore

/// Checks a decoded spec and compiles it into a ``RuntimeSnapshot`` in one walk, so the rules
/// that validate a field and the code that uses it stay side by side. Every problem is
/// collected; a snapshot is produced only when there are none.
struct SpecCompiler {
    private(set) var issues: [(path: SpecPath, message: String)] = []
    let sourceFile: String
    let coreCount: Int

    init(sourceFile: String, coreCount: Int) {
        self.sourceFile = sourceFile
        self.coreCount = coreCount
    }

    mutating func problem(_ path: SpecPath, _ message: String) {
        issues.append((path, message))
    }

    mutating func compile(_ spec: GantrySpec) -> RuntimeSnapshot? {
        let root = SpecPath()
        let services = compileServices(spec.services ?? [], at: root / "services")
        let (policies, policyNames) = compilePolicies(spec.gateway?.policies ?? [], services: services, at: root / "gateway" / "policies")
        let (rules, routeSettings) = compileRoutes(
            spec.gateway?.routes ?? [], services: services, policies: policies, policyNames: policyNames, at: root / "gateway" / "routes")
        checkObjectMetrics(services, routes: rules)
        let listeners = compileListeners(spec.loadBalancer?.listeners, at: root / "loadBalancer" / "listeners")
        var limits = compileLimits(spec.loadBalancer?.limits, at: root / "loadBalancer" / "limits")
        limits.requestHeadersTimeout = positive(
            spec.loadBalancer?.timeouts?.requestHeaders, default: .seconds(10), at: root / "loadBalancer" / "timeouts" / "requestHeaders")
        let idle = positive(spec.loadBalancer?.timeouts?.idle, default: .seconds(60), at: root / "loadBalancer" / "timeouts" / "idle")

        var workers = coreCount
        if let value = within(spec.runtime?.workers, 1...256, at: root / "runtime" / "workers") { workers = value }
        let grace = positive(spec.runtime?.shutdownGracePeriod, default: .seconds(30), at: root / "runtime" / "shutdownGracePeriod")

        var accessLog = AccessLogSettings(enabled: spec.accessLog?.enabled ?? true, destination: .stdout)
        switch spec.accessLog?.path {
        case nil, "stdout": break
        case "stderr": accessLog = AccessLogSettings(enabled: accessLog.enabled, destination: .stderr)
        case let path?:
            if path.isEmpty {
                problem(root / "accessLog" / "path", "must be stdout, stderr or a file path")
            } else {
                accessLog = AccessLogSettings(enabled: accessLog.enabled, destination: .file(path))
            }
        }

        var admin = AdminSettings(enabled: spec.admin?.enabled ?? true)
        if let port = within(spec.admin?.port, 0...65535, at: root / "admin" / "port") {
            admin = AdminSettings(enabled: admin.enabled, port: port)
        }
        let stateDirectory = spec.runtime?.stateDirectory ?? Self.defaultStateDirectory(besides: sourceFile)

        let dns = spec.dns.map { compileDNS($0, listeners: listeners, at: root / "dns") }
        let otlp = spec.tracing?.otlp.map { compileOTLP($0, at: root / "tracing" / "otlp") }

        guard issues.isEmpty else { return nil }
        return RuntimeSnapshot(
            sourceFile: sourceFile, workers: workers, shutdownGracePeriod: grace, listeners: listeners,
            limits: limits, idleTimeout: idle, routes: RouteTable(rules: rules), routeSettings: routeSettings,
            services: services, policies: policies, accessLog: accessLog, admin: admin, stateDirectory: stateDirectory,
            dns: dns, serverTiming: spec.tracing?.serverTiming ?? false, otlp: otlp)
    }

    /// `.gantry` in the directory of the file (or the working directory for the built-in one).
    static func defaultStateDirectory(besides file: String) -> String {
        guard let slash = file.lastIndex(of: "/") else { return ".gantry" }
        return String(file[..<slash]) + "/.gantry"
    }

    // MARK: Listeners and limits

    private mutating func compileLimits(_ spec: LimitsSpec?, at path: SpecPath) -> EdgeLimits {
        var limits = EdgeLimits()
        guard let spec else { return limits }
        let kibibyte = 1 << 10
        let mebibyte = 1 << 20
        let window = Int(Int32.max)  // RFC 9113 §6.9.2: a window is at most 2^31-1
        if let size = within(spec.maxHeadSize?.bytes, kibibyte...mebibyte, at: path / "maxHeadSize", "1KiB and 1MiB") {
            limits.maxHeadSize = size
        }
        if let count = within(spec.maxHeaderCount, 1...10_000, at: path / "maxHeaderCount") { limits.maxHeaderCount = count }
        if let size = within(spec.maxURILength?.bytes, 64...mebibyte, at: path / "maxURILength", "64 bytes and 1MiB") {
            limits.maxURILength = size
        }
        if let size = spec.maxBodySize {
            if size.bytes >= 1 { limits.maxBodySize = size.bytes } else { problem(path / "maxBodySize", "must be at least 1 byte") }
        }
        if let count = within(spec.maxConnections, 1...10_000_000, at: path / "maxConnections") { limits.maxConnections = count }
        if let count = within(spec.http2MaxConcurrentStreams, 1...10_000, at: path / "http2MaxConcurrentStreams") {
            limits.http2MaxConcurrentStreams = count
        }
        // Below 16KiB streams crawl.
        if let size = within(spec.http2StreamWindow?.bytes, (16 * kibibyte)...window, at: path / "http2StreamWindow", "16KiB and 2GiB") {
            limits.http2StreamWindow = size
        }
        if let size = within(spec.http2ConnectionWindow?.bytes, (64 * kibibyte)...window, at: path / "http2ConnectionWindow", "64KiB and 2GiB") {
            limits.http2ConnectionWindow = size
        }
        if let count = within(spec.maxConnectionsPerClient, 1...10_000_000, at: path / "maxConnectionsPerClient") {
            limits.maxConnectionsPerClient = count
        }
        if let count = within(spec.newConnectionsPerSecondPerClient, 1...10_000_000, at: path / "newConnectionsPerSecondPerClient") {
            limits.newConnectionsPerSecondPerClient = count
        }
        return limits
    }

    // MARK: Services

    private mutating func compileServices(_ specs: [ServiceSpec], at path: SpecPath) -> [ServiceSettings] {
        var result: [ServiceSettings] = []
        var seen: [String: Int] = [:]
        for (index, spec) in specs.enumerated() {
            let here = path / index
            guard let name = spec.name else {
                problem(here / "name", "missing required key \"name\"")
                continue
            }
            if !Self.isDNSLabel(name) {
                problem(here / "name", "\"\(name)\" is not a valid service name: use at most 63 lowercase letters, digits and '-'")
            }
            if let first = seen[name] {
                problem(here / "name", "duplicate service name \"\(name)\" (first used by services[\(first)])")
                continue
            }
            seen[name] = index

            var endpoints: [EndpointAddress] = []
            for (position, text) in (spec.endpoints ?? []).enumerated() {
                if let address = EndpointAddress(parsing: text) {
                    if endpoints.contains(address) {
                        problem(here / "endpoints" / position, "duplicate endpoint \(address)")
                    }
                    endpoints.append(address)
                } else {
                    problem(here / "endpoints" / position, "\"\(text)\" is not an endpoint: write host:port, e.g. 127.0.0.1:9001")
                }
            }
            var pods: PodTemplate?
            if let podSpec = spec.pods {
                pods = compilePods(podSpec, at: here / "pods")
                if spec.endpoints != nil { problem(here / "endpoints", "a service has either endpoints or pods, not both") }
            } else if spec.endpoints == nil || spec.endpoints?.isEmpty == true {
                problem(here, "service \"\(name)\" has no endpoints: add pods: {command: [...]} or endpoints: [127.0.0.1:9001]")
            }
            let clusterIP = compileClusterIP(spec, pods: pods, at: here)

            let balancer = compileBalancer(spec.loadBalancing, at: here / "loadBalancing")
            let timeouts = here / "timeouts"
            let pool = here / "connectionPool"
            var maxIdle = 64
            if let value = within(spec.connectionPool?.maxIdlePerEndpoint, 0...10_000, at: pool / "maxIdlePerEndpoint") { maxIdle = value }
            var settings = ServiceSettings(
                    index: result.count, name: name, balancer: balancer, staticEndpoints: endpoints,
                    connectTimeout: positive(spec.timeouts?.connect, default: .seconds(2), at: timeouts / "connect"),
                    responseTimeout: positive(spec.timeouts?.response, default: .seconds(15), at: timeouts / "response"),
                    idleTimeout: positive(spec.timeouts?.idle, default: .seconds(300), at: timeouts / "idle"),
                    retry: compileRetry(spec.retries, default: RetryPolicy(), at: here / "retries"),
                    maxIdlePerEndpoint: maxIdle,
                    poolIdleTimeout: positive(spec.connectionPool?.idleTimeout, default: .seconds(60), at: pool / "idleTimeout"),
                    outlierDetection: compileOutlierDetection(spec.outlierDetection, at: here / "outlierDetection"),
                    pods: pods, autoscaling: spec.autoscaling.flatMap { compileAutoscaling($0, pods: pods, at: here / "autoscaling") },
                    clusterIP: clusterIP
                )
            settings.healthCheck = spec.healthCheck.map { compileHealthCheck($0, at: here / "healthCheck") }
            result.append(settings)
        }
        return result
    }

    private mutating func compileOutlierDetection(_ spec: OutlierDetectionSpec?, at path: SpecPath) -> OutlierDetection {
        var policy = OutlierDetection()
        guard let spec else { return policy }
        if let failures = spec.consecutiveConnectFailures {
            if failures >= 1 { policy.consecutiveConnectFailures = failures } else {
                problem(path / "consecutiveConnectFailures", "must be at least 1")
            }
        }
        policy.baseEjectionTime = positive(spec.baseEjectionTime, default: policy.baseEjectionTime, at: path / "baseEjectionTime")
        policy.maxEjectionTime = positive(spec.maxEjectionTime, default: policy.maxEjectionTime, at: path / "maxEjectionTime")
        return policy
    }

    private mutating func compileClusterIP(_ spec: ServiceSpec, pods: PodTemplate?, at path: SpecPath) -> ClusterIP {
        let port = spec.port ?? pods?.port ?? 8080
        _ = within(port, 0...65535, at: path / "port")
        switch spec.clusterIP {
        case nil: return spec.pods == nil ? .none : .automatic(port: port)
        case "None"?: return .none
        case let address?:
            if !address.hasPrefix("127.") || !Self.isIPLiteral(address) {
                problem(path / "clusterIP", "\"\(address)\" is not a loopback IPv4 address such as 127.0.10.1, or None")
            }
            return .fixed(address: address, port: port)
        }
    }

    private mutating func compileBalancer(_ spec: LoadBalancingSpec?, at path: SpecPath) -> BalancerKind {
        switch spec {
        case nil, .roundRobin?: return .roundRobin
        case .leastRequest?: return .leastRequest
        case .random?: return .random
        case .consistentHash(let on)?:
            let here = path / "consistentHash"
            if let header = on.header {
                if !Self.isToken(header) { problem(here / "header", "\"\(header)\" is not a valid header name") }
                return .consistentHash(.header(header.lowercased()))
            }
            if let cookie = on.cookie {
                if !Self.isToken(cookie) { problem(here / "cookie", "\"\(cookie)\" is not a valid cookie name") }
                return .consistentHash(.cookie(cookie))
            }
            return .consistentHash(.clientIP)
        }
    }

    private mutating func compileRetry(_ spec: RetrySpec?, default base: RetryPolicy, at path: SpecPath) -> RetryPolicy {
        guard let spec else { return base }
        var policy = base
        if let attempts = within(spec.attempts, 0...10, at: path / "attempts") { policy.retries = attempts }
        if let on = spec.retryOn { policy.retryOn = Set(on) }
        return policy
    }

    // MARK: Routes

    private mutating func compileRoutes(
        _ specs: [RouteSpec], services: [ServiceSettings], policies: [CompiledPolicy], policyNames: [String: Int], at path: SpecPath
    ) -> ([RouteRule], [RouteSettings]) {
        var rules: [RouteRule] = []
        var settings: [RouteSettings] = []
        var signatures: [String: Int] = [:]
        let serviceNames = services.map(\.name)
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
            var mirror: RouteMirror?
            if let spec = spec.mirror {
                let percent = spec.percent ?? 100
                if !(0...100).contains(percent) { problem(here / "mirror" / "percent", "must be between 0 and 100") }
                if let name = spec.service {
                    if let shadow = services.first(where: { $0.name == name }) {
                        mirror = RouteMirror(service: shadow.index, percent: percent)
                    } else {
                        problem(here / "mirror" / "service", "unknown service \"\(name)\"" + Suggestion.hint(for: name, among: serviceNames))
                    }
                } else {
                    problem(here / "mirror" / "service", "missing required key \"service\"")
                }
            }
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
            settings.append(
                RouteSettings(
                    responseTimeout: positive(spec.timeout, default: service.responseTimeout, at: here / "timeout"),
                    retry: compileRetry(spec.retries, default: service.retry, at: here / "retries"),
                    policies: routePolicies,
                    rateLimits: routePolicies.compactMap { (policies[$0].policy as? RateLimitPolicy)?.policyField }))
        }
        return (rules, settings)
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

    // MARK: Helpers

    /// `value` when it lies in `range`; otherwise a problem, "must be between" the bounds (as
    /// `shown`, when they read better in units), and nil.
    mutating func within(_ value: Int?, _ range: ClosedRange<Int>, at path: SpecPath, _ shown: String? = nil) -> Int? {
        guard let value else { return nil }
        guard range.contains(value) else {
            problem(path, "must be between \(shown ?? "\(range.lowerBound) and \(range.upperBound)")")
            return nil
        }
        return value
    }

    mutating func positive(_ value: DurationSpec?, default fallback: Duration, at path: SpecPath) -> Duration {
        guard let value else { return fallback }
        guard value.duration > .zero else {
            problem(path, "must be longer than zero")
            return fallback
        }
        return value.duration
    }

    /// Kubernetes' DNS-1123 label: what service names must be so they can become DNS names.
    static func isDNSLabel(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else {
            return false
        }
        return bytes.allSatisfy {
            ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                || $0 == UInt8(ascii: "-")
        }
    }

    /// RFC 9110 `token`: header names, methods, cookie names.
    static func isToken(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
    }

    static func isIPLiteral(_ text: String) -> Bool {
        if text.contains(":") {
            return text.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." } && text.count >= 2
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            guard let value = Int(part), part.count <= 3 else { return false }
            return (0...255).contains(value)
        }
    }
}
