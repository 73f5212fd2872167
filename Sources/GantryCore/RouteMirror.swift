/// A route's mirror (Envoy's `request_mirror_policies`, nginx's `mirror`): a share of its
/// requests is copied to another service, whose answers are read and dropped. The client's
/// request never waits for the copy.
public struct RouteMirror: Sendable, Hashable {
    /// Index of the shadow service in the snapshot.
    public let service: Int
    /// Percent of the route's requests copied, 0 to 100.
    public let percent: Double

    public init(service: Int, percent: Double) {
        self.service = service
        self.percent = percent
    }

    /// Whether the request with this draw (any 64-bit number) is copied.
    public func takes(_ draw: UInt64) -> Bool {
        Double(draw % 1_000_000) < percent * 10_000
    }
}
