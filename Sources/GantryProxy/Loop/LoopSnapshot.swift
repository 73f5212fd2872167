import GantryConfig
import GantryCore

/// What one event loop proxies with, as of one configuration and one set of endpoints: routes,
/// policies bound to their state, and each service's settings and endpoints. A request takes the
/// loop's current snapshot when its head arrives and keeps it to its last byte; a new
/// configuration or a new endpoint set makes a new snapshot and never changes one a request holds.
final class LoopSnapshot {
    let runtime: RuntimeSnapshot
    let gateway: LoopGateway
    /// By service index in ``runtime``.
    let clusters: [UpstreamCluster]
    /// The data plane's version of what this snapshot was made from.
    let version: Int

    init(runtime: RuntimeSnapshot, gateway: LoopGateway, clusters: [UpstreamCluster], version: Int) {
        self.runtime = runtime
        self.gateway = gateway
        self.clusters = clusters
        self.version = version
    }

    func cluster(named name: String) -> UpstreamCluster? {
        clusters.first { $0.settings.name == name }
    }
}

/// One configuration's policies bound to their state on one loop, and the loop's request counts
/// for its routes. Shared by every snapshot of the same configuration (endpoint changes keep it).
final class LoopGateway {
    /// By policy index in the configuration.
    let policies: [BoundPolicy]
    /// By route index, found by the route's name and service on its first request
    /// (``RequestMetrics``): the counts outlive the configuration.
    private var routeCounts: [RequestMetrics.RouteCounts?]

    init(policies: [BoundPolicy], routeCount: Int) {
        self.policies = policies
        self.routeCounts = Array(repeating: nil, count: routeCount)
    }

    /// The counts of the route at `index`; `exchange`, whose request took the route, names it
    /// the first time.
    func counts(forRoute index: Int, in metrics: RequestMetrics, naming exchange: ProxyExchange) -> RequestMetrics.RouteCounts {
        if let counts = routeCounts[index] { return counts }
        let counts = metrics.counts(route: exchange.context.route?.name ?? "-", service: exchange.context.cluster.settings.name)
        routeCounts[index] = counts
        return counts
    }
}

/// A service as one snapshot sees it: its settings, its endpoints and the balancer built for
/// them, the loop's round-robin position, which is kept by the service's name across snapshots,
/// and the loop's pool of idle connections its endpoints are reached by (TLS connections are
/// pooled apart, by their options).
final class UpstreamCluster {
    let settings: ServiceSettings
    let endpoints: EndpointSet
    let cursor: BalancerCursor
    let pool: UpstreamPool
    /// Set when the service's endpoints speak HTTP/2: its requests go as streams on these.
    let http2Pool: HTTP2UpstreamPool?

    init(settings: ServiceSettings, endpoints: EndpointSet, cursor: BalancerCursor, pool: UpstreamPool, http2Pool: HTTP2UpstreamPool? = nil) {
        self.settings = settings
        self.endpoints = endpoints
        self.cursor = cursor
        self.pool = pool
        self.http2Pool = http2Pool
    }
}

/// A loop's round-robin position for one service.
final class BalancerCursor {
    var position: Int

    init(position: Int) {
        self.position = position
    }
}
