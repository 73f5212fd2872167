import ServiceLifecycle

/// Runs a ``DataPlane`` under swift-service-lifecycle: binds on start, and on graceful shutdown
/// (SIGTERM/SIGINT) stops accepting and lets requests in flight finish within the grace period.
public struct DataPlaneService: Service {
    public let plane: DataPlane
    private let onStart: @Sendable ([BoundListener]) async -> Void

    public init(plane: DataPlane, onStart: @escaping @Sendable ([BoundListener]) async -> Void = { _ in }) {
        self.plane = plane
        self.onStart = onStart
    }

    public func run() async throws {
        let bound = try await plane.start()
        await onStart(bound)
        try? await gracefulShutdown()
        await plane.drain(gracePeriod: plane.snapshot.shutdownGracePeriod)
    }
}
