import NIOConcurrencyHelpers

/// Endpoint state by address, so that counters and health survive a reload or an endpoint-set
/// change. Used by the control plane only; the data plane holds direct references.
public final class EndpointRegistry: Sendable {
    private let states = NIOLockedValueBox<[EndpointAddress: EndpointState]>([:])

    public init() {}

    public func state(for address: EndpointAddress) -> EndpointState {
        states.withLockedValue { states in
            if let state = states[address] { return state }
            let state = EndpointState(address: address)
            states[address] = state
            return state
        }
    }

    /// Forgets endpoints no longer in use, so the registry does not grow with pod churn.
    public func retain(only addresses: Set<EndpointAddress>) {
        states.withLockedValue { states in
            states = states.filter { addresses.contains($0.key) }
        }
    }
}
