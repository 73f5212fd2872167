import GantryCore

/// Checks a decoded spec and compiles it into a ``RuntimeSnapshot`` in one walk, so the rules
/// that validate a field and the code that uses it stay side by side. Every problem is
/// collected; a snapshot is produced only when there are none.
struct SpecCompiler {
    private(set) var issues: [(path: SpecPath, message: String)] = []
    let sourceFile: String
    let coreCount: Int
    /// `gantry up --kubernetes`: every service's endpoints come from the cluster's EndpointSlices,
    /// so a service may name neither endpoints nor pods, and pods, autoscaling and cluster IPs
    /// (the cluster's own) are checked but not run.
    let endpointsFromCluster: Bool

    init(sourceFile: String, coreCount: Int, endpointsFromCluster: Bool = false) {
        self.sourceFile = sourceFile
        self.coreCount = coreCount
        self.endpointsFromCluster = endpointsFromCluster
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

        let admin = compileAdmin(spec.admin, at: root / "admin")
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
            } else if (spec.endpoints ?? []).isEmpty, !endpointsFromCluster {
                problem(here, "service \"\(name)\" has no endpoints: add pods: {command: [...]} or endpoints: [127.0.0.1:9001]")
            }
            var clusterIP = compileClusterIP(spec, pods: pods, at: here)
            var autoscaling = spec.autoscaling.flatMap { compileAutoscaling($0, pods: pods, at: here / "autoscaling") }
            if endpointsFromCluster {
                (pods, autoscaling, clusterIP, endpoints) = (nil, nil, .none, [])
            }

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
                    pods: pods, autoscaling: autoscaling,
                    clusterIP: clusterIP
                )
            settings.healthCheck = spec.healthCheck.map { compileHealthCheck($0, at: here / "healthCheck") }
            settings.tls = spec.tls.map { $0.compile(resolve: resolve, problem: { problem(here / "tls" / [$0], $1) }) }
            compileProtocol(spec, into: &settings, at: here)
            settings.healthCheck?.tls = settings.tls
            settings.healthCheck?.http2 = settings.upstreamProtocol.isHTTP2
            result.append(settings)
        }
        return result
    }

    /// `protocol`: HTTP/2 endpoints, and how many streams a connection to one carries.
    private mutating func compileProtocol(_ spec: ServiceSpec, into settings: inout ServiceSettings, at path: SpecPath) {
        if let text = spec.protocol {
            if let kind = UpstreamProtocol(rawValue: text) {
                settings.upstreamProtocol = kind
            } else {
                problem(path / "protocol", "\"\(text)\" is not a protocol: write http1, h2c (HTTP/2 without TLS, as gRPC servers listen) or h2")
            }
        }
        switch settings.upstreamProtocol {
        case .h2:
            if spec.tls == nil { problem(path / "protocol", "h2 is HTTP/2 over TLS: add tls: {} (the system's trust store) or tls: {caFile: ...}, or use h2c") }
            settings.tls?.http2 = true
        case .h2c:
            if spec.tls != nil { problem(path / "protocol", "h2c is HTTP/2 without TLS, but the service has tls: write protocol: h2") }
        case .http1:
            break
        }
        let streams = path / "connectionPool" / "maxConcurrentStreams"
        if let value = within(spec.connectionPool?.maxConcurrentStreams, 1...10_000, at: streams) {
            if settings.upstreamProtocol.isHTTP2 { settings.maxConcurrentStreams = value } else {
                problem(streams, "streams are HTTP/2's: set protocol: h2c or h2, or remove maxConcurrentStreams")
            }
        }
    }

    /// The admin API: loopback without a token; elsewhere only with one, since it can change
    /// what runs.
    private mutating func compileAdmin(_ spec: AdminSpec?, at path: SpecPath) -> AdminSettings {
        let port = within(spec?.port, 0...65535, at: path / "port") ?? 9901
        var token = spec?.token
        if spec?.token != nil, spec?.tokenFile != nil { problem(path / "tokenFile", "set token or tokenFile, not both") }
        if let file = spec?.tokenFile {
            let resolved = resolve(file)
            if let text = try? String(contentsOfFile: resolved, encoding: .utf8) {
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                problem(path / "tokenFile", "cannot read \(resolved): check the path (relative paths start at the file's directory)")
            }
        }
        if let token, token.count < 16 || token.contains(where: { $0.isWhitespace }) {
            problem(
                path / (spec?.tokenFile == nil ? "token" : "tokenFile"),
                "the token must be at least 16 characters without spaces, e.g. the output of `openssl rand -hex 16`")
        }
        let address = spec?.address ?? "127.0.0.1"
        if !Self.isIPLiteral(address) {
            problem(path / "address", "\"\(address)\" is not an IP address: write 127.0.0.1, or 0.0.0.0 with a token")
        } else if !Self.isLoopback(address), token == nil {
            problem(
                path / "address",
                "\(address) opens the admin API, which can change what runs, beyond this machine: set admin.token or admin.tokenFile "
                    + "(every change and every gantry command must then send it), or keep 127.0.0.1")
        }
        return AdminSettings(enabled: spec?.enabled ?? true, address: address, port: port, token: token)
    }

    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1"
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

    mutating func compileRetry(_ spec: RetrySpec?, default base: RetryPolicy, at path: SpecPath) -> RetryPolicy {
        guard let spec else { return base }
        var policy = base
        if let attempts = within(spec.attempts, 0...10, at: path / "attempts") { policy.retries = attempts }
        if let on = spec.retryOn { policy.retryOn = Set(on) }
        return policy
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
