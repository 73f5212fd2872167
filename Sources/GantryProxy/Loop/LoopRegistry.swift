import GantryConfig

/// What one loop keeps across snapshots, found again by stable identity when a new snapshot is
/// installed: each service's round-robin position (by service name) and each policy's
/// loop state (by ``PolicyIdentity``). What a new snapshot no longer names is let go.
struct LoopRegistry {
    private var cursors: [String: BalancerCursor] = [:]
    private var policyStates: [PolicyIdentity: Any] = [:]

    /// The clusters of a new snapshot, with the cursors of the services they share with the last.
    /// `start` draws a new service's first position (round robin starts at a different place on
    /// each loop, as Envoy's workers do).
    mutating func clusters(for state: PlaneState, start: () -> Int) -> [UpstreamCluster] {
        var kept: [String: BalancerCursor] = [:]
        let clusters = state.runtime.services.map { settings in
            let cursor = cursors[settings.name] ?? BalancerCursor(position: start())
            kept[settings.name] = cursor
            return UpstreamCluster(settings: settings, endpoints: state.endpoints[settings.name] ?? .empty(settings.balancer), cursor: cursor)
        }
        cursors = kept
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
