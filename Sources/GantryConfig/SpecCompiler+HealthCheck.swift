import GantryCore

extension SpecCompiler {
    /// `services[i].healthCheck` with ALB's thresholds and matcher, a shorter default interval.
    mutating func compileHealthCheck(_ spec: HealthCheckSpec, at path: SpecPath) -> HealthCheckSettings {
        let checkPath = spec.path ?? "/"
        if !checkPath.hasPrefix("/") { problem(path / "path", "must start with /, e.g. /healthz") }
        _ = within(spec.port, 1...65535, at: path / "port")
        let interval = positive(spec.interval, default: .seconds(10), at: path / "interval")
        let timeout = positive(spec.timeout, default: .seconds(5), at: path / "timeout")
        if timeout >= interval, spec.timeout != nil || spec.interval != nil {
            problem(path / "timeout", "must be less than the interval (\(interval))")
        }
        func threshold(_ value: Int?, _ key: String, default fallback: Int) -> Int {
            within(value, 1...10, at: path / key) ?? fallback
        }
        var matcher = StatusMatcher("200")!
        if let text = spec.matcher {
            if let parsed = StatusMatcher(text) { matcher = parsed } else {
                problem(path / "matcher", "\"\(text)\" is not a list of status codes or ranges, e.g. 200 or 200-299 or 200,204")
            }
        }
        if spec.grpc != nil {
            for (key, value) in [("path", spec.path), ("matcher", spec.matcher)] where value != nil {
                problem(path / key, "a gRPC check passes on SERVING, not on a path's status: remove \(key), or grpc")
            }
        }
        var settings = HealthCheckSettings(
            path: checkPath, port: spec.port, interval: interval, timeout: min(timeout, interval),
            healthyThreshold: threshold(spec.healthyThreshold, "healthyThreshold", default: 3),
            unhealthyThreshold: threshold(spec.unhealthyThreshold, "unhealthyThreshold", default: 2), matcher: matcher)
        settings.grpcService = spec.grpc.map { $0.service ?? "" }
        return settings
    }
}
