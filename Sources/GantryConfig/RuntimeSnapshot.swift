import GantryCore

/// gantry.yaml compiled: immutable, names resolved to indices, defaults applied. The data plane
/// reads one snapshot per request; a reload publishes a new one and never changes a request in
/// flight.
public final class RuntimeSnapshot: Sendable {
    public let sourceFile: String
    public let workers: Int
    public let shutdownGracePeriod: Duration
    public let listeners: [ListenerSettings]
    public let limits: EdgeLimits
    public let idleTimeout: Duration
    public let routes: RouteTable
    /// Per-route settings, indexed like `routes.rules`.
    public let routeSettings: [RouteSettings]
    public let services: [ServiceSettings]
    public let accessLog: AccessLogSettings

    public init(
        sourceFile: String, workers: Int, shutdownGracePeriod: Duration, listeners: [ListenerSettings],
        limits: EdgeLimits, idleTimeout: Duration, routes: RouteTable, routeSettings: [RouteSettings],
        services: [ServiceSettings], accessLog: AccessLogSettings
    ) {
        self.sourceFile = sourceFile
        self.workers = workers
        self.shutdownGracePeriod = shutdownGracePeriod
        self.listeners = listeners
        self.limits = limits
        self.idleTimeout = idleTimeout
        self.routes = routes
        self.routeSettings = routeSettings
        self.services = services
        self.accessLog = accessLog
    }

    public func service(named name: String) -> ServiceSettings? {
        services.first { $0.name == name }
    }
}

public struct ListenerSettings: Sendable, Hashable {
    public let name: String
    public let address: String
    public let port: Int
    public let scheme: String
}

public struct EdgeLimits: Sendable, Hashable {
    public var maxHeadSize: Int = 60 * 1024
    public var maxHeaderCount: Int = 100
    public var maxURILength: Int = 8 * 1024

    public init() {}
}

public struct RouteSettings: Sendable {
    public let responseTimeout: Duration
    public let retry: RetryPolicy
}

public struct ServiceSettings: Sendable {
    public let index: Int
    public let name: String
    public let balancer: BalancerKind
    /// The endpoints written in the file. Services with pods get theirs at run time.
    public let staticEndpoints: [EndpointAddress]
    public let connectTimeout: Duration
    public let responseTimeout: Duration
    public let idleTimeout: Duration
    public let retry: RetryPolicy
    public let maxIdlePerEndpoint: Int
    public let poolIdleTimeout: Duration
}

public struct AccessLogSettings: Sendable, Hashable {
    public enum Destination: Sendable, Hashable {
        case stdout, stderr
        case file(String)
    }

    public let enabled: Bool
    public let destination: Destination

    public init(enabled: Bool, destination: Destination) {
        self.enabled = enabled
        self.destination = destination
    }
}
