import GantryCore

/// gantry.yaml, one to one. Every field is optional here; validation reports what is required
/// and compilation applies the defaults, so decoding can report every problem at once.
public struct GantrySpec: Decodable, Sendable {
    public var runtime: RuntimeSpec?
    public var dns: DNSSpec?
    public var loadBalancer: LoadBalancerSpec?
    public var gateway: GatewaySpec?
    public var services: [ServiceSpec]?
    public var accessLog: AccessLogSpec?
    public var admin: AdminSpec?
    public var tracing: TracingSpec?
}

/// `tracing:` W3C `traceparent` is always propagated (a trace is started when the client sent
/// none); these settings add what a client may ask for.
public struct TracingSpec: Decodable, Sendable {
    /// Answer requests that ask for tracing (`X-Gantry-Trace: 1`, or a sampled `traceparent`)
    /// with `Server-Timing`: each stage's duration, the route, service and endpoint. Off by
    /// default: it tells clients about the inside of the path.
    public var serverTiming: Bool?
    /// Export a span per request (and one per upstream exchange) over OTLP/HTTP. Absent: no
    /// spans are recorded.
    public var otlp: OTLPSpec?
}

/// `tracing.otlp:` where and how spans are exported. `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*`
/// environment variables override these, as in every OpenTelemetry SDK.
public struct OTLPSpec: Decodable, Sendable {
    /// The collector's traces URL, used as written. Default `http://127.0.0.1:4318/v1/traces`.
    public var endpoint: String?
    /// `httpProtobuf` (default) or `httpJSON`.
    public var `protocol`: OTLPProtocol?
    /// Sent with every export, e.g. an API key for a hosted collector.
    public var headers: [String: String]?
    /// The share of new traces recorded, 0 to 1. Default 1. A request that arrives with a
    /// `traceparent` follows its sampled flag (parent-based sampling).
    public var sampling: Double?
    /// The `service.name` resource attribute. Default `gantry`.
    public var serviceName: String?
    /// How long finished spans wait to be sent in a batch. Default 5s.
    public var exportInterval: DurationSpec?
    /// How long one export may take. Default 10s.
    public var timeout: DurationSpec?
}

public enum OTLPProtocol: String, SpecEnum {
    case httpProtobuf, httpJSON
}

/// `runtime:` process-wide settings.
public struct RuntimeSpec: Decodable, Sendable {
    /// Event loops (one thread each). Default: the number of CPU cores.
    public var workers: Int?
    /// How long `gantry up` lets in-flight requests finish on SIGINT/SIGTERM. Default 30s.
    public var shutdownGracePeriod: DurationSpec?
    /// Where pod logs and generated state live. Default `.gantry` next to the file.
    public var stateDirectory: String?
}

/// `accessLog:` one JSON line per request.
public struct AccessLogSpec: Decodable, Sendable {
    /// Default true.
    public var enabled: Bool?
    /// `stdout` (default), `stderr`, or a file path (appended to).
    public var path: String?
}

/// `loadBalancer:` the listeners that accept client connections.
public struct LoadBalancerSpec: Decodable, Sendable {
    public var listeners: [ListenerSpec]?
    public var limits: LimitsSpec?
    public var timeouts: ListenerTimeoutsSpec?
}

public struct ListenerSpec: Decodable, Sendable {
    /// Default `listener-<index>`.
    public var name: String?
    /// Default `127.0.0.1`; `0.0.0.0` or `::` to accept connections from other machines.
    public var address: String?
    /// Required. 0 asks the system for a free port (printed on start).
    public var port: Int?
    /// Terminate TLS here. Absent: plain HTTP.
    public var tls: TLSSpec?
    /// Accept HTTP/2: offered by ALPN on TLS listeners (default true there); on plain listeners
    /// HTTP/2 with prior knowledge (h2c), default false.
    public var http2: Bool?
    /// The name of a TLS listener: every request here is answered 308 with the same host, path
    /// and query on that listener's port.
    public var redirectTo: String?
}

/// `loadBalancer.listeners[i].tls:` at least one of `certificates` and `selfSigned`.
public struct TLSSpec: Decodable, Sendable {
    /// PEM files; the first is the default, the others are chosen by SNI against their names.
    /// Files replaced on disk are picked up for new connections.
    public var certificates: [CertificateSpec]?
    /// Names for a certificate signed by gantry's local CA, created on first start in the state
    /// directory and reused (`gantry certs ca` prints the CA's path).
    public var selfSigned: [String]?
    /// Adds `Strict-Transport-Security` to every response on this listener.
    public var hsts: HSTSSpec?
}

public struct CertificateSpec: Decodable, Sendable {
    /// PEM certificate chain, leaf first. Relative paths are relative to the file.
    public var certificate: String?
    /// PEM private key (RSA, P-256, P-384 or Ed25519).
    public var key: String?
}

public struct HSTSSpec: Decodable, Sendable {
    /// Default 365 days (8760h).
    public var maxAge: DurationSpec?
    /// Default false.
    public var includeSubDomains: Bool?
    /// Default false.
    public var preload: Bool?
}

/// `loadBalancer.limits:` what a request may be, checked before it reaches any upstream.
public struct LimitsSpec: Decodable, Sendable {
    /// Request line plus headers. Default 60KiB (Envoy's `max_request_headers_kb`). Over it: 431.
    public var maxHeadSize: ByteSize?
    /// Default 100 (Envoy's `max_headers_count`). Over it: 431.
    public var maxHeaderCount: Int?
    /// Default 8KiB. Over it: 414.
    public var maxURILength: ByteSize?
    /// Request body, on every route (a validate policy may lower it). Default: none. Over it: 413.
    public var maxBodySize: ByteSize?
    /// Open client connections, all listeners. Default 50000. Over it: closed at once.
    public var maxConnections: Int?
    /// Open connections from one client address. Default 4096.
    public var maxConnectionsPerClient: Int?
    /// New connections per second from one client address (bursts of twice as many). Default 1000.
    public var newConnectionsPerSecondPerClient: Int?
    /// Streams one HTTP/2 connection may have open at once. Default 100.
    public var http2MaxConcurrentStreams: Int?
    /// HTTP/2 flow-control window per stream. Default 64KiB.
    public var http2StreamWindow: ByteSize?
    /// HTTP/2 flow-control window per connection. Default 1MiB.
    public var http2ConnectionWindow: ByteSize?
}

/// `loadBalancer.timeouts:`
public struct ListenerTimeoutsSpec: Decodable, Sendable {
    /// A client connection with no request in flight is closed after this. Default 60s.
    public var idle: DurationSpec?
    /// A request head must arrive complete this long after its first bytes (slowloris).
    /// Default 10s (Envoy's edge guidance for `request_headers_timeout`). Over it: 408.
    public var requestHeaders: DurationSpec?
}

/// `gateway:` the ingress rules and the policies they use.
public struct GatewaySpec: Decodable, Sendable {
    public var policies: [PolicySpec]?
    public var routes: [RouteSpec]?
}

/// One ingress rule, `gateway.routes[i]`.
public struct RouteSpec: Decodable, Sendable {
    /// Default `<host><path>`, e.g. `example.com/app`.
    public var name: String?
    /// Exact (`example.com`) or wildcard (`*.example.com`); absent matches any host.
    public var host: String?
    /// Required; starts with `/`.
    public var path: String?
    /// `Prefix` (default) or `Exact`.
    public var pathType: PathType?
    /// Only these methods match; absent matches any method.
    public var methods: [String]?
    /// Every header condition must hold.
    public var headers: [HeaderMatchSpec]?
    /// Every query-parameter condition must hold: `[{name: v, value: "2"}]` or `{name, regex}`.
    public var queryParams: [QueryMatchSpec]?
    /// The service that answers; or `backends`.
    public var service: String?
    /// Several services by weight (Gateway API `backendRefs`): `[{service: app-v1, weight: 95},
    /// {service: app-v2, weight: 5}]`.
    public var backends: [BackendSpec]?
    /// With `backends`: keep a caller on one service by a header's or cookie's value,
    /// `{header: X-User-ID}` or `{cookie: session}`.
    public var sticky: StickySpec?
    /// A copy of a share of the requests to a shadow service, its answers dropped:
    /// `{service: app-next, percent: 10}` (default 100).
    public var mirror: MirrorSpec?
    /// Overrides the service's `timeouts.response` for this route.
    public var timeout: DurationSpec?
    /// Overrides the service's `retries` for this route.
    public var retries: RetrySpec?
    /// Names of `gateway.policies`, run in this order before the request goes upstream.
    public var policies: [String]?
    /// Protocols a client may switch to with HTTP/1.1 `Upgrade` (RFC 9110 §7.8). Default
    /// `[websocket]`; `[]` refuses every upgrade (the request goes on without `Upgrade`).
    public var upgrades: [String]?
    /// Timeouts of an upgraded connection (a WebSocket).
    public var tunnel: TunnelSpec?
}

extension PathType: SpecEnum {}

/// A header condition: exactly one of `value`, `regex` or `present`.
public struct HeaderMatchSpec: Decodable, Sendable, ExclusiveKeys {
    public var name: String?
    public var value: String?
    public var regex: String?
    public var present: Bool?

    public static let exclusiveKeys = ExclusiveKeySet(["value", "regex", "present"])
}

/// `{name: v, value: "2"}` or `{name: v, regex: "[0-9]+"}`.
public struct QueryMatchSpec: Decodable, Sendable, ExclusiveKeys {
    public var name: String?
    public var value: String?
    public var regex: String?

    public static let exclusiveKeys = ExclusiveKeySet(["value", "regex"])
}

public struct MirrorSpec: Decodable, Sendable {
    public var service: String?
    public var percent: Double?
}

/// `{service: app-v2, weight: 5}`; the weight defaults to 1, as in Gateway API.
public struct BackendSpec: Decodable, Sendable {
    public var service: String?
    public var weight: Int?
}

public struct StickySpec: Decodable, Sendable, ExclusiveKeys {
    public var header: String?
    public var cookie: String?

    public static let exclusiveKeys = ExclusiveKeySet(["header", "cookie"])
}

/// `services[i]`.
public struct ServiceSpec: Decodable, Sendable {
    /// Required; a DNS label (lowercase letters, digits, `-`), unique.
    public var name: String?
    /// Static upstream addresses, `host:port`. Either this or `pods`.
    public var endpoints: [String]?
    /// Processes gantry runs for this service; its endpoints are the ready ones.
    public var pods: PodSpec?
    /// The service's stable address on loopback, where gantry balances calls from pods to the
    /// service. Default: the first free one of 127.0.10.1, 127.0.10.2 … for services with pods;
    /// `None` for none (a headless service).
    public var clusterIP: String?
    /// The port of the cluster IP. Default: the pods' port.
    public var port: Int?
    /// Default `roundRobin`.
    public var loadBalancing: LoadBalancingSpec?
    public var timeouts: ServiceTimeoutsSpec?
    public var retries: RetrySpec?
    public var connectionPool: ConnectionPoolSpec?
    public var outlierDetection: OutlierDetectionSpec?
    /// Scales `pods.replicas` between bounds with the Kubernetes HPA algorithm.
    public var autoscaling: AutoscalingSpec?
    /// The load balancer's own active checks of every target, beside pod probes.
    public var healthCheck: HealthCheckSpec?
    /// The endpoints speak HTTPS: gantry verifies them and may present a client certificate.
    public var tls: UpstreamTLSSpec?
    /// What the endpoints speak: `http1` (default), `h2c` (HTTP/2 without TLS, as gRPC servers
    /// usually listen) or `h2` (HTTP/2 over TLS; needs `tls`).
    public var `protocol`: String?
}

/// `services[i].healthCheck:` checks as a cloud load balancer's target group makes them.
public struct HealthCheckSpec: Decodable, Sendable {
    /// Default `/`.
    public var path: String?
    /// Default: the target's own port.
    public var port: Int?
    /// Default 10s.
    public var interval: DurationSpec?
    /// Default 5s; must be less than `interval`.
    public var timeout: DurationSpec?
    /// Passed checks in a row that bring an unhealthy target back. Default 3.
    public var healthyThreshold: Int?
    /// Failed checks in a row that take a target out. Default 2.
    public var unhealthyThreshold: Int?
    /// Status codes that pass: `200`, `200,204`, `200-399`. Default `200`.
    public var matcher: String?
    /// Checks with `grpc.health.v1.Health/Check` instead of a GET: a target passes when it
    /// answers `SERVING`. Not with `path` or `matcher`.
    public var grpc: GRPCHealthCheckSpec?
}

/// `services[i].healthCheck.grpc:` the gRPC health service a check asks.
public struct GRPCHealthCheckSpec: Decodable, Sendable {
    /// The service name the check asks about. Default: empty, the server as a whole.
    public var service: String?
}

/// `services[i].outlierDetection:` passive health for endpoints that refuse connections.
public struct OutlierDetectionSpec: Decodable, Sendable {
    /// Default 5.
    public var consecutiveConnectFailures: Int?
    /// Default 30s; each further ejection lasts one more of these.
    public var baseEjectionTime: DurationSpec?
    /// Default 300s.
    public var maxEjectionTime: DurationSpec?
}

/// `roundRobin`, `leastRequest`, `random`, or `{consistentHash: {clientIP: true}}`,
/// `{consistentHash: {header: X-User-ID}}`, `{consistentHash: {cookie: session}}`.
public enum LoadBalancingSpec: Decodable, Sendable, Equatable {
    case roundRobin
    case leastRequest
    case random
    case consistentHash(HashOnSpec)

    enum Simple: String, SpecEnum {
        case roundRobin, leastRequest, random
    }

    private enum CodingKeys: String, CodingKey {
        case consistentHash
    }

    public init(from decoder: any Decoder) throws {
        if (try? decoder.singleValueContainer().decode(String.self)) != nil {
            switch try Simple(from: decoder) {
            case .roundRobin: self = .roundRobin
            case .leastRequest: self = .leastRequest
            case .random: self = .random
            }
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard let hashOn = try container.decodeIfPresent(HashOnSpec.self, forKey: .consistentHash) else {
            throw SpecProblem(
                "expected roundRobin, leastRequest, random or {consistentHash: {clientIP: true | header: NAME | cookie: NAME}}")
        }
        self = .consistentHash(hashOn)
    }
}

/// What a consistent hash is computed on: exactly one of the three.
public struct HashOnSpec: Decodable, Sendable, Equatable, ExclusiveKeys {
    public var clientIP: Bool?
    public var header: String?
    public var cookie: String?

    public static let exclusiveKeys = ExclusiveKeySet(
        [("clientIP", "clientIP: true"), ("header", "header: NAME"), ("cookie", "cookie: NAME")], flags: ["clientIP"])
}

/// `services[i].timeouts:`
public struct ServiceTimeoutsSpec: Decodable, Sendable {
    /// Establishing an upstream connection. Default 2s. On expiry: try another endpoint, else 504.
    public var connect: DurationSpec?
    /// From the request's end to the response head. Default 15s (Envoy's route timeout). 504.
    public var response: DurationSpec?
    /// No bytes either way while a request is in flight. Default 5m (Envoy's stream idle timeout).
    public var idle: DurationSpec?
}

/// `retries:` on a service or route.
public struct RetrySpec: Decodable, Sendable {
    /// Retries after the first attempt. Default 2.
    public var attempts: Int?
    /// Default `[connectFailure, reset]`.
    public var retryOn: [AttemptFailure]?
}

extension AttemptFailure: SpecEnum {}

/// `services[i].connectionPool:` keep-alive connections to the endpoints, per event loop.
public struct ConnectionPoolSpec: Decodable, Sendable {
    /// Idle connections kept per endpoint and event loop. Default 64.
    public var maxIdlePerEndpoint: Int?
    /// An idle pooled connection is closed after this. Default 60s.
    public var idleTimeout: DurationSpec?
    /// For HTTP/2 endpoints: streams one connection carries at once, at most (fewer when the
    /// endpoint's `SETTINGS_MAX_CONCURRENT_STREAMS` says so); more open another connection.
    /// Default 100.
    public var maxConcurrentStreams: Int?
}

/// `routes[i].tunnel:` how long an upgraded connection (a WebSocket) may stay open.
public struct TunnelSpec: Decodable, Sendable {
    /// Closed after this long with no byte either way. Default 1h.
    public var idleTimeout: DurationSpec?
    /// Closed after this long whatever its traffic. Default: none.
    public var maxDuration: DurationSpec?
}
