import GantryConfig
import GantryCore

/// What the data plane publishes to its event loops: a configuration, every service's
/// endpoints, and the shared state of each of the configuration's policies. Versions only grow:
/// a loop that is handed an older state than it has (two publications crossing on their way to
/// it) keeps the newer one, which already holds everything the older one said.
struct PlaneState: Sendable {
    let version: Int
    let runtime: RuntimeSnapshot
    /// By service name. A service without a set has no endpoints yet.
    let endpoints: [String: EndpointSet]
    /// By policy index in ``runtime``.
    let sharedPolicyStates: [any Sendable]

    /// The first state for a configuration: the file's static endpoints, and fresh state for
    /// every policy.
    static func first(for runtime: RuntimeSnapshot, registry: EndpointRegistry) -> PlaneState {
        var endpoints: [String: EndpointSet] = [:]
        for service in runtime.services where !service.staticEndpoints.isEmpty {
            endpoints[service.name] = EndpointSet(kind: service.balancer, endpoints: service.staticEndpoints.map(registry.state(for:)))
        }
        return PlaneState(version: 1, runtime: runtime, endpoints: endpoints, sharedPolicyStates: runtime.policies.map { $0.makeSharedState() })
    }

    /// Each policy's shared state, by identity.
    var policyStates: [PolicyIdentity: any Sendable] {
        var states: [PolicyIdentity: any Sendable] = [:]
        for (policy, state) in zip(runtime.policies, sharedPolicyStates) { states[policy.identity] = state }
        return states
    }
}
