import GantryConfig
import GantryCore

/// What one loop keeps across snapshots, found again by stable identity when a new snapshot is
/// installed: each service's round-robin position (by service name), each policy's loop state
/// (by ``PolicyIdentity``), and the pools of TLS connections (by their TLS options, so that a
/// connection is only reused by a service that would have made it the same way). What a new
/// snapshot no longer names is let go.
struct LoopRegistry {
    private var cursors: [String: BalancerCursor] = [:]
    private var policyStates: [PolicyIdentity: Any] = [:]
    private(set) var securePools: [UpstreamTLS: UpstreamPool] = [:]
    /// HTTP/2 connections, by their TLS options (nil: `h2c`).
    private(set) var http2Pools: [UpstreamTLS?: HTTP2UpstreamPool] = [:]

    /// The clusters of a new snapshot, with the cursors of the services they share with the last.
    /// `start` draws a new service's first position (round robin starts at a different place on
    /// each loop, as Envoy's workers do).
    /// Plain-HTTP services share `plainPool`. Pools of TLS options no service uses any more are
    /// closed.
    mutating func clusters(for state: PlaneState, plainPool: UpstreamPool, start: () -> Int) -> [UpstreamCluster] {
        var kept: [String: BalancerCursor] = [:]
        var keptPools: [UpstreamTLS: UpstreamPool] = [:]
        var keptHTTP2Pools: [UpstreamTLS?: HTTP2UpstreamPool] = [:]
        let clusters = state.runtime.services.map { settings in
            let cursor = cursors[settings.name] ?? BalancerCursor(position: start())
            kept[settings.name] = cursor
            var pool = plainPool
            var http2Pool: HTTP2UpstreamPool?
            if settings.upstreamProtocol.isHTTP2 {
                let found = keptHTTP2Pools[settings.tls] ?? http2Pools[settings.tls] ?? HTTP2UpstreamPool()
                keptHTTP2Pools[settings.tls] = found
                http2Pool = found
            } else if let tls = settings.tls {
                pool = keptPools[tls] ?? securePools[tls] ?? UpstreamPool()
                keptPools[tls] = pool
            }
            return UpstreamCluster(
                settings: settings, endpoints: state.endpoints[settings.name] ?? .empty(settings.balancer), cursor: cursor, pool: pool,
                http2Pool: http2Pool)
        }
        cursors = kept
        for (tls, pool) in securePools where keptPools[tls] == nil { pool.closeAll() }
        securePools = keptPools
        for (tls, pool) in http2Pools where keptHTTP2Pools[tls] == nil { pool.closeAll() }
        http2Pools = keptHTTP2Pools
        return clusters
    }

    /// A new configuration's policies bound to their shared state and this loop's state, kept
    /// from the last configuration for policies whose identity is unchanged.
    mutating func bindPolicies(of state: PlaneState) -> [BoundPolicy] {
        var kept: [PolicyIdentity: Any] = [:]
        let bound = zip(state.runtime.policies, state.sharedPolicyStates).map { compiled, shared in
            let loopState = policyStates[compiled.identity] ?? compiled.makeLoopState()
            kept[compiled.identity] = loopState
            return compiled.bind(shared: shared, loop: loopState)
        }
        policyStates = kept
        return bound
    }
}
