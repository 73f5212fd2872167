import Foundation

/// One pod as `gantry get pods` and the admin API show it.
public struct PodStatus: Sendable, Codable, Hashable {
    public let name: String
    public let service: String
    public let phase: String
    /// Running, CrashLoopBackOff, Terminating, LivenessProbeFailed …
    public let reason: String
    public let ready: Bool
    public let restarts: Int
    public let created: Date
    public let address: String
    public let pid: Int32?
    public let inFlight: Int
    public let lastExitCode: Int32?
    public let log: String
    /// Resident memory of the pod's whole process group.
    public let memoryBytes: Int?
    /// When `ready` last changed (the Ready condition's `lastTransitionTime`); the pod's creation
    /// until it first does.
    public var readyTransition: Date?
}

/// One service as `gantry get services` and the admin API show it.
public struct ServiceStatus: Sendable, Codable, Hashable {
    public let name: String
    /// `127.0.10.1:8080`, or nil for a headless service.
    public let clusterIP: String?
    public let desiredReplicas: Int?
    /// Addresses traffic goes to now.
    public let endpoints: [String]
    /// With a health check: every target and its health (unhealthy ones are not in `endpoints`).
    public let targets: [TargetStatus]?

    public init(name: String, clusterIP: String?, desiredReplicas: Int?, endpoints: [String], targets: [TargetStatus]? = nil) {
        self.name = name
        self.clusterIP = clusterIP
        self.desiredReplicas = desiredReplicas
        self.endpoints = endpoints
        self.targets = targets
    }
}
