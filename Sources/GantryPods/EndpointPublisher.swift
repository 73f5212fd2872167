import GantryCore

/// Where the supervisor publishes a service's ready pods: the data plane.
public protocol EndpointPublisher: Sendable {
    /// Replaces the service's endpoints on every event loop. Calls take effect in call order.
    func publish(_ endpoints: [EndpointAddress], forService service: String)
    /// Returns once every event loop uses what was published before the call, so that no new
    /// request can pick an endpoint that was removed.
    func settled() async
    /// Requests in flight to an endpoint, on all loops.
    func inFlight(_ endpoint: EndpointAddress) -> Int
    /// Requests ever sent to an endpoint.
    func requestCount(_ endpoint: EndpointAddress) -> Int
    /// Closes the tunnels (WebSockets) still open to an endpoint whose drain period is over.
    func closeTunnels(to endpoint: EndpointAddress) async
}

extension EndpointPublisher {
    public func closeTunnels(to endpoint: EndpointAddress) async {}
}
