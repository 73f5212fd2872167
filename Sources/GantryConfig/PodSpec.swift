import GantryCore

/// `services[i].pods:` the processes behind a service, as a Deployment's pod template with
/// its replica count. Field names and defaults are Kubernetes'.
public struct PodSpec: Decodable, Sendable {
    /// Required: the executable and its leading arguments. `gantry` means this gantry binary.
    public var command: [String]?
    /// The container image `gantry export kubernetes` puts the command in; `gantry up` runs the
    /// command on this machine and does not read it. Default: the gantry image (`--image`).
    public var image: String?
    public var args: [String]?
    public var env: [EnvVarSpec]?
    public var workingDir: String?
    /// Default 1.
    public var replicas: Int?
    /// The port each pod listens on, on its own loopback address (`$PORT`). Default 8080.
    public var port: Int?
    public var resources: ResourcesSpec?
    /// `Always` (default), `OnFailure` or `Never`.
    public var restartPolicy: RestartPolicy?
    /// Default 30.
    public var terminationGracePeriodSeconds: Int?
    public var startupProbe: ProbeSpec?
    public var readinessProbe: ProbeSpec?
    public var livenessProbe: ProbeSpec?
    /// CrashLoopBackOff timing. Default `{initial: 10s, max: 5m}`.
    public var restartBackoff: RestartBackoffSpec?
    /// How a changed template replaces the pods, as a Deployment's:
    /// `{rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}` (the defaults).
    public var strategy: StrategySpec?
}

public struct StrategySpec: Decodable, Sendable {
    /// `RollingUpdate`, the only type.
    public var type: String?
    public var rollingUpdate: RollingUpdateSpec?
}

public struct RollingUpdateSpec: Decodable, Sendable {
    /// Pods above the replica count while rolling: a count or a percentage. Default 25%.
    public var maxSurge: IntOrPercent?
    /// Pods that may be unavailable while rolling: a count or a percentage. Default 25%.
    public var maxUnavailable: IntOrPercent?
}

/// Kubernetes' IntOrString for rollouts: `1` or `"25%"`.
public struct IntOrPercent: Decodable, Sendable {
    public let amount: RolloutStrategy.Amount

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let count = try? container.decode(Int.self) {
            guard count >= 0 else { throw SpecProblem("must not be negative") }
            amount = .count(count)
            return
        }
        let text = try container.decode(String.self)
        guard text.hasSuffix("%"), let percent = Int(text.dropLast()), (0...100).contains(percent) else {
            throw SpecProblem("write a count such as 1, or a percentage such as 25%")
        }
        amount = .percent(percent)
    }
}

extension RestartPolicy: SpecEnum {}

public struct EnvVarSpec: Decodable, Sendable {
    public var name: String?
    public var value: String?
}

public struct ResourcesSpec: Decodable, Sendable {
    public var requests: ResourceListSpec?
}

public struct ResourceListSpec: Decodable, Sendable {
    public var cpu: CPUQuantity?
    public var memory: ByteSize?
}

public struct RestartBackoffSpec: Decodable, Sendable {
    public var initial: DurationSpec?
    public var max: DurationSpec?
}

/// A Kubernetes probe: exactly one of `httpGet`, `tcpSocket`, `grpc`, `exec`.
public struct ProbeSpec: Decodable, Sendable, ExclusiveKeys {
    public var httpGet: HTTPGetActionSpec?
    public var tcpSocket: TCPSocketActionSpec?
    public var grpc: GRPCActionSpec?
    public var exec: ExecActionSpec?
    /// Default 0.
    public var initialDelaySeconds: Int?
    /// Default 10, at least 1.
    public var periodSeconds: Int?
    /// Default 1, at least 1.
    public var timeoutSeconds: Int?
    /// Default 1; must be 1 for liveness and startup probes.
    public var successThreshold: Int?
    /// Default 3.
    public var failureThreshold: Int?

    public static let exclusiveKeys = ExclusiveKeySet(["httpGet", "tcpSocket", "grpc", "exec"])
}

public struct HTTPGetActionSpec: Decodable, Sendable {
    /// Default `/`.
    public var path: String?
    /// Default: the pod's port.
    public var port: Int?
    public var httpHeaders: [EnvVarSpec]?
}

public struct TCPSocketActionSpec: Decodable, Sendable {
    /// Default: the pod's port.
    public var port: Int?
}

/// A `grpc.health.v1.Health/Check` call, as Kubernetes' gRPC probe makes it.
public struct GRPCActionSpec: Decodable, Sendable {
    /// Default: the pod's port. (Kubernetes requires it; gantry knows the pod's.)
    public var port: Int?
    /// The service name the check asks about. Default: empty, the server as a whole.
    public var service: String?
}

public struct ExecActionSpec: Decodable, Sendable {
    public var command: [String]?
}

/// `admin:` the admin API that `gantry get`, `scale`, `logs` and `rollout` talk to. It listens
/// on loopback by default, apart from the public listeners; anywhere else it needs a token.
public struct AdminSpec: Decodable, Sendable {
    /// Default true.
    public var enabled: Bool?
    /// Default 127.0.0.1. Any other than a loopback address needs `token` or `tokenFile`.
    public var address: String?
    /// Default 9901 (Envoy's admin port); 0 picks a free one.
    public var port: Int?
    /// What every call that changes something (and every `gantry` command) must send as
    /// `Authorization: Bearer …`: at least 16 characters.
    public var token: String?
    /// The same, read from a file (trailing whitespace dropped).
    /// Not with `token`.
    public var tokenFile: String?
}
