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
    /// Per-route settings, indexed by `RouteRule.index`: the file's routes, then the
    /// services' own routes.
    public let routeSettings: [RouteSettings]
    /// One catch-all route per service, indexed like `services`, for requests that arrive at a
    /// service's cluster IP.
    public let serviceRoutes: [RouteRule]
    public let services: [ServiceSettings]
    public let policies: [CompiledPolicy]
    public let accessLog: AccessLogSettings
    public let admin: AdminSettings
    /// Set when the file has a `dns:` section.
    public let dns: DNSSettings?
    /// `tracing.serverTiming`.
    public let serverTiming: Bool
    /// `tracing.otlp`: set when spans are exported.
    public let otlp: OTLPSettings?
    /// Pod logs and generated state.
    public let stateDirectory: String

    public init(
        sourceFile: String, workers: Int, shutdownGracePeriod: Duration, listeners: [ListenerSettings],
        limits: EdgeLimits, idleTimeout: Duration, routes: RouteTable, routeSettings: [RouteSettings],
        services: [ServiceSettings], policies: [CompiledPolicy], accessLog: AccessLogSettings, admin: AdminSettings, stateDirectory: String,
        dns: DNSSettings? = nil, serverTiming: Bool = false, otlp: OTLPSettings? = nil
    ) {
        self.dns = dns
        self.serverTiming = serverTiming
        self.otlp = otlp
        self.sourceFile = sourceFile
        self.workers = workers
        self.shutdownGracePeriod = shutdownGracePeriod
        self.listeners = listeners
        self.limits = limits
        self.idleTimeout = idleTimeout
        self.routes = routes
        var settings = routeSettings
        var serviceRoutes: [RouteRule] = []
        for service in services {
            serviceRoutes.append(
                RouteRule(
                    index: settings.count, name: "service/\(service.name)", host: .any, path: PathRule(type: .prefix, path: "/"),
                    service: service.index))
            settings.append(RouteSettings(responseTimeout: service.responseTimeout, retry: service.retry, policies: []))
        }
        self.routeSettings = settings
        self.serviceRoutes = serviceRoutes
        self.services = services
        self.policies = policies
        self.accessLog = accessLog
        self.admin = admin
        self.stateDirectory = stateDirectory
    }

    public func service(named name: String) -> ServiceSettings? {
        services.first { $0.name == name }
    }

    /// The names of the file's routes, in the file's order.
    public var routeNames: [String] {
        routes.rules.sorted { $0.index < $1.index }.map(\.name)
    }

    /// The catch-all route of a service's cluster IP.
    public func serviceRoute(named name: String) -> RouteRule? {
        service(named: name).map { serviceRoutes[$0.index] }
    }
}

/// `tracing.otlp` compiled, defaults applied.
public struct OTLPSettings: Sendable {
    public var endpoint = "http://127.0.0.1:4318/v1/traces"
    public var `protocol` = OTLPProtocol.httpProtobuf
    public var headers: [(String, String)] = []
    public var sampling = 1.0
    public var serviceName = "gantry"
    public var exportInterval = Duration.seconds(5)
    public var timeout = Duration.seconds(10)

    public init() {}
}

public struct ListenerSettings: Sendable, Hashable {
    public let name: String
    public let address: String
    public let port: Int
    public let scheme: String
    /// Set for a service's cluster IP: every request goes to that service (by name, which
    /// outlives a reload that reorders the services), without ingress routing.
    public let service: String?
    public var tls: TLSSettings?
    /// HTTP/2 accepted (by ALPN with TLS, by prior knowledge without).
    public var http2 = false
    /// Every request is redirected (308) to this port, over https.
    public var redirectToPort: Int?

    public init(name: String, address: String, port: Int, scheme: String, service: String? = nil) {
        self.name = name
        self.address = address
        self.port = port
        self.scheme = scheme
        self.service = service
    }
}

/// The DNS server: where it listens, the file's zones, and how services are named.
public struct DNSSettings: Sendable {
    public let address: String
    public let port: Int
    public let zones: [DNSZone]
    public let ttl: UInt32
    /// `svc.cluster.local` names: `<service>.<namespace>.svc.<clusterDomain>`.
    public let clusterDomain: DNSName
    public let namespace: String
}

/// A TLS listener's certificates: files, and names for the local CA to sign.
public struct TLSSettings: Sendable, Hashable {
    public struct CertificateFiles: Sendable, Hashable {
        public let certificate: String
        public let key: String
    }

    public let certificates: [CertificateFiles]
    public let selfSigned: [String]
    /// The `Strict-Transport-Security` value, when HSTS is on.
    public let hsts: String?
}

public struct EdgeLimits: Sendable, Hashable {
    public var maxHeadSize: Int = 60 * 1024
    public var maxHeaderCount: Int = 100
    public var maxURILength: Int = 8 * 1024
    public var maxBodySize: Int?
    public var requestHeadersTimeout: Duration = .seconds(10)
    public var maxConnections = 50_000
    public var maxConnectionsPerClient = 4096
    public var newConnectionsPerSecondPerClient = 1000
    public var http2MaxConcurrentStreams = 100
    public var http2StreamWindow = 65_536
    public var http2ConnectionWindow = 1 << 20

    public init() {}
}

public struct RouteSettings: Sendable {
    public let responseTimeout: Duration
    /// `responseTimeout` in nanoseconds, converted once: the data plane arms it for every
    /// request, and a `Duration`'s components are a 128-bit division.
    public let responseTimeoutNanoseconds: Int64
    public let retry: RetryPolicy
    /// Indices into `RuntimeSnapshot.policies`, in the order they run.
    public let policies: [Int]
    /// The route's rate limits as `RateLimit-Policy` items, in order.
    public let rateLimits: [String]
    /// Protocols a client may switch to (`Upgrade`), lowercased.
    public var upgrades: [String] = ["websocket"]
    public var tunnel = TunnelSettings()

    public init(responseTimeout: Duration, retry: RetryPolicy, policies: [Int], rateLimits: [String] = []) {
        self.responseTimeout = responseTimeout
        self.responseTimeoutNanoseconds = responseTimeout.nanoseconds
        self.retry = retry
        self.policies = policies
        self.rateLimits = rateLimits
    }
}

/// How long an upgraded connection may stay open.
public struct TunnelSettings: Sendable, Hashable {
    public var idleTimeout: Duration = .seconds(3600)
    /// nil: no limit.
    public var maxDuration: Duration?

    public init() {}
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
    public let outlierDetection: OutlierDetection
    /// Set when gantry runs the service's endpoints as pods.
    public let pods: PodTemplate?
    public let autoscaling: AutoscalingSettings?
    public let clusterIP: ClusterIP
    public var healthCheck: HealthCheckSettings?
    /// Set when the endpoints speak HTTPS.
    public var tls: UpstreamTLS?
    public var upstreamProtocol = UpstreamProtocol.http1
    /// For HTTP/2 endpoints: the most streams gantry opens on one connection at once.
    public var maxConcurrentStreams = 100
}

/// What a service's endpoints speak.
public enum UpstreamProtocol: String, Sendable, Hashable, CaseIterable {
    /// HTTP/1.1, over TLS when the service has `tls`.
    case http1
    /// HTTP/2 with prior knowledge, without TLS (RFC 9113 §3.3).
    case h2c
    /// HTTP/2 over TLS, agreed by ALPN.
    case h2

    public var isHTTP2: Bool { self != .http1 }
}

/// A service's load-balancer health check.
public struct HealthCheckSettings: Sendable, Hashable {
    public let path: String
    public let port: Int?
    public let interval: Duration
    public let timeout: Duration
    public let healthyThreshold: Int
    public let unhealthyThreshold: Int
    public let matcher: StatusMatcher
    /// The service's TLS options: the checks of an HTTPS service speak HTTPS, verified as its
    /// requests are (a target whose certificate fails would fail every request).
    public var tls: UpstreamTLS?
    /// Set for a gRPC check (`grpc.health.v1.Health/Check` for this service name, passing on
    /// `SERVING`) in place of a GET of ``path``.
    public var grpcService: String?
    /// The service's endpoints speak HTTP/2 (`protocol: h2c` or `h2`): so do its checks.
    public var http2 = false
}

/// A service's stable virtual address.
public enum ClusterIP: Sendable, Hashable {
    /// None (a headless service).
    case none
    /// The first free loopback address from 127.0.10.1 on, at `port`.
    case automatic(port: Int)
    case fixed(address: String, port: Int)
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

public struct AdminSettings: Sendable, Hashable {
    public let enabled: Bool
    /// Loopback unless a token guards it.
    public let address: String
    public let port: Int
    /// Required of every call that changes something, when set.
    public let token: String?

    public init(enabled: Bool = true, address: String = "127.0.0.1", port: Int = 9901, token: String? = nil) {
        self.enabled = enabled
        self.address = address
        self.port = port
        self.token = token
    }
}
