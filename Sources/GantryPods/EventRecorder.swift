import Foundation
import NIOConcurrencyHelpers

/// A Kubernetes-style event: what happened to which object, and why.
public struct PodEvent: Sendable, Codable, Hashable {
    public enum Kind: String, Sendable, Codable { case normal = "Normal", warning = "Warning" }
    public let time: Date
    public let kind: Kind
    public let reason: String
    /// `pod/app-service-7d9f2` or `service/app-service`.
    public let object: String
    public let message: String
}

/// The last events, newest last, bounded so a crash-looping pod cannot grow memory.
public final class EventRecorder: Sendable {
    private let events = NIOLockedValueBox<[PodEvent]>([])
    private let capacity: Int
    private let sink: (@Sendable (PodEvent) -> Void)?

    public init(capacity: Int = 1000, sink: (@Sendable (PodEvent) -> Void)? = nil) {
        self.capacity = capacity
        self.sink = sink
    }

    public func record(_ kind: PodEvent.Kind, _ reason: String, object: String, _ message: String) {
        let event = PodEvent(time: Date(), kind: kind, reason: reason, object: object, message: message)
        events.withLockedValue { events in
            events.append(event)
            if events.count > capacity { events.removeFirst(events.count - capacity) }
        }
        sink?(event)
    }

    public var all: [PodEvent] { events.withLockedValue { $0 } }
}
