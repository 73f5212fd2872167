import Foundation
import GantryPods
import NIOConcurrencyHelpers

/// Replicas over time for the dashboard's chart: every service with pods, sampled on an
/// interval, the last hour kept.
public final class ReplicaHistory: Sendable {
    public struct Sample: Sendable, Codable, Hashable {
        public let time: Date
        public let service: String
        /// Pods running, pods ready, and pods wanted.
        public let replicas: Int
        public let ready: Int
        public let desired: Int
    }

    private let samples = NIOLockedValueBox<[Sample]>([])
    private let capacity: Int

    public init(capacity: Int = 3600) {
        self.capacity = capacity
    }

    public var all: [Sample] { samples.withLockedValue { $0 } }

    public func record(_ new: [Sample]) {
        samples.withLockedValue { samples in
            samples.append(contentsOf: new)
            if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
        }
    }

    /// Samples `supervisor` every `interval` until cancelled; `services` names the services
    /// with pods at each sample.
    public func run(supervisor: PodSupervisor, services: @Sendable () -> [String], interval: Duration = .seconds(2)) async {
        while !Task.isCancelled {
            let pods = await supervisor.podStatuses()
            var new: [Sample] = []
            for service in services() {
                let mine = pods.filter { $0.service == service }
                let desired = await supervisor.serviceStatus(service).replicas ?? mine.count
                new.append(Sample(time: Date(), service: service, replicas: mine.count, ready: mine.filter(\.ready).count, desired: desired))
            }
            record(new)
            try? await Task.sleep(for: interval)
        }
    }
}
