import GantryCore

extension SpecCompiler {
    /// Compiles `services[i].pods` with Kubernetes' defaults and validation rules.
    mutating func compilePods(_ spec: PodSpec, at path: SpecPath) -> PodTemplate? {
        let issuesBefore = issues.count
        let command = spec.command ?? []
        if command.isEmpty || command[0].isEmpty {
            problem(path / "command", "missing required key \"command\", e.g. command: [gantry, example, app-service]")
        }
        var env: [PodTemplate.EnvVar] = []
        for (index, variable) in (spec.env ?? []).enumerated() {
            guard let name = variable.name, Self.isEnvName(name) else {
                problem(path / "env" / index / "name", "needs a name made of letters, digits and '_', not starting with a digit")
                continue
            }
            env.append(PodTemplate.EnvVar(name: name, value: variable.value ?? ""))
        }
        let replicas = spec.replicas ?? 1
        _ = within(replicas, 0...1000, at: path / "replicas")
        let port = spec.port ?? 8080
        _ = within(port, 1...65535, at: path / "port")
        let grace = spec.terminationGracePeriodSeconds ?? 30
        if grace < 0 { problem(path / "terminationGracePeriodSeconds", "must not be negative") }
        var backoff = RestartBackoff()
        if let spec = spec.restartBackoff {
            let initial = positive(spec.initial, default: .seconds(10), at: path / "restartBackoff" / "initial")
            let maximum = positive(spec.max, default: .seconds(300), at: path / "restartBackoff" / "max")
            if maximum < initial { problem(path / "restartBackoff" / "max", "must not be shorter than initial") }
            backoff = RestartBackoff(initial: initial, maximum: maximum)
        }
        let startup = spec.startupProbe.flatMap { compileProbe($0, kind: .startup, podPort: port, at: path / "startupProbe") }
        let readiness = spec.readinessProbe.flatMap { compileProbe($0, kind: .readiness, podPort: port, at: path / "readinessProbe") }
        let liveness = spec.livenessProbe.flatMap { compileProbe($0, kind: .liveness, podPort: port, at: path / "livenessProbe") }
        var rollout = RolloutStrategy.kubernetesDefault
        if let strategy = spec.strategy {
            if let type = strategy.type, type != "RollingUpdate" {
                problem(path / "strategy" / "type", "only RollingUpdate is supported: pods are replaced new before old")
            }
            rollout = RolloutStrategy(
                maxSurge: strategy.rollingUpdate?.maxSurge?.amount ?? rollout.maxSurge,
                maxUnavailable: strategy.rollingUpdate?.maxUnavailable?.amount ?? rollout.maxUnavailable)
            if rollout.maxSurge == .count(0) || rollout.maxSurge == .percent(0), rollout.maxUnavailable == .count(0) || rollout.maxUnavailable == .percent(0) {
                problem(path / "strategy" / "rollingUpdate", "maxSurge and maxUnavailable cannot both be 0")
            }
        }
        guard issues.count == issuesBefore else { return nil }
        return PodTemplate(
            command: command, args: spec.args ?? [], env: env, workingDir: spec.workingDir, replicas: replicas, port: port,
            cpuRequestMillicores: spec.resources?.requests?.cpu?.millicores,
            memoryRequestBytes: spec.resources?.requests?.memory?.bytes, restartPolicy: spec.restartPolicy ?? .always,
            terminationGracePeriod: .seconds(grace), startupProbe: startup, readinessProbe: readiness, livenessProbe: liveness,
            restartBackoff: backoff, rollout: rollout)
    }

    private mutating func compileProbe(_ spec: ProbeSpec, kind: ProbeKind, podPort: Int, at path: SpecPath) -> Probe? {
        let action: Probe.Action
        if let http = spec.httpGet {
            let probePath = http.path ?? "/"
            if !probePath.hasPrefix("/") { problem(path / "httpGet" / "path", "must start with /") }
            var headers: [Probe.HeaderField] = []
            for (index, header) in (http.httpHeaders ?? []).enumerated() {
                guard let name = header.name, Self.isToken(name) else {
                    problem(path / "httpGet" / "httpHeaders" / index / "name", "needs a valid header name")
                    continue
                }
                headers.append(Probe.HeaderField(name: name, value: header.value ?? ""))
            }
            action = .httpGet(path: probePath, port: checkedPort(http.port, podPort: podPort, at: path / "httpGet" / "port"), headers: headers)
        } else if let tcp = spec.tcpSocket {
            action = .tcpSocket(port: checkedPort(tcp.port, podPort: podPort, at: path / "tcpSocket" / "port"))
        } else if let grpc = spec.grpc {
            action = .grpc(port: checkedPort(grpc.port, podPort: podPort, at: path / "grpc" / "port"), service: grpc.service ?? "")
        } else {
            let command = spec.exec?.command ?? []
            if command.isEmpty { problem(path / "exec" / "command", "needs a command, e.g. [cat, /tmp/healthy]") }
            action = .exec(command: command)
        }
        let delay = spec.initialDelaySeconds ?? 0
        if delay < 0 { problem(path / "initialDelaySeconds", "must not be negative") }
        let period = spec.periodSeconds ?? 10
        if period < 1 { problem(path / "periodSeconds", "must be at least 1") }
        let timeout = spec.timeoutSeconds ?? 1
        if timeout < 1 { problem(path / "timeoutSeconds", "must be at least 1") }
        let success = spec.successThreshold ?? 1
        if success < 1 { problem(path / "successThreshold", "must be at least 1") }
        if kind != .readiness, success != 1 { problem(path / "successThreshold", "must be 1 for \(kind.rawValue) probes") }
        let failure = spec.failureThreshold ?? 3
        if failure < 1 { problem(path / "failureThreshold", "must be at least 1") }
        return Probe(
            action: action, initialDelay: .seconds(delay), period: .seconds(period), timeout: .seconds(timeout),
            successThreshold: success, failureThreshold: failure)
    }

    private mutating func checkedPort(_ port: Int?, podPort: Int, at path: SpecPath) -> Int {
        guard let port else { return podPort }
        _ = within(port, 1...65535, at: path)
        return port
    }

    /// Environment variable names as Kubernetes accepts them (C identifiers, plus `.` and `-`).
    static func isEnvName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }
}
