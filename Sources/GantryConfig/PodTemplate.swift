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
}
