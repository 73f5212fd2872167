import GantryCore

/// A service's pods, compiled from ``PodSpec``.
public struct PodTemplate: Sendable, Hashable {
    public struct EnvVar: Sendable, Hashable {
        public let name: String
        public let value: String
    }

    public let command: [String]
    public let args: [String]
    public let env: [EnvVar]
    public let workingDir: String?
    public let replicas: Int
    public let port: Int
    public let cpuRequestMillicores: Int?
    public let memoryRequestBytes: Int?
    public let restartPolicy: RestartPolicy
    public let terminationGracePeriod: Duration
    public let startupProbe: Probe?
    public let readinessProbe: Probe?
    public let livenessProbe: Probe?
    public let restartBackoff: RestartBackoff
    /// How a changed template replaces the pods.
    public let rollout: RolloutStrategy

    /// The pods' own part, without the replica count and the rollout strategy (a Deployment's
    /// fields): a change here replaces the pods; a change there scales them or changes how the
    /// next rollout goes.
    public var withoutDeployment: PodTemplate {
        PodTemplate(
            command: command, args: args, env: env, workingDir: workingDir, replicas: 0, port: port,
            cpuRequestMillicores: cpuRequestMillicores, memoryRequestBytes: memoryRequestBytes, restartPolicy: restartPolicy,
            terminationGracePeriod: terminationGracePeriod, startupProbe: startupProbe, readinessProbe: readinessProbe,
            livenessProbe: livenessProbe, restartBackoff: restartBackoff, rollout: .kubernetesDefault)
    }

    /// The same in every gantry process for the same pod: its own part of the template and the
    /// environment gantry gives it. A gantry that takes a running pod over compares it with the
    /// fingerprint recorded when the pod started: a pod started from something else is replaced.
    public func fingerprint(environment: [String: String]) -> String {
        var text = String(reflecting: withoutDeployment)
        for name in environment.keys.sorted() { text += "\n\(name)=\(environment[name]!)" }
        return String(StableHash.hash(text), radix: 16)
    }
}
