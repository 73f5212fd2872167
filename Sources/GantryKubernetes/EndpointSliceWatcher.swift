import Foundation
import GantryCore
import Logging
import NIOConcurrencyHelpers

/// Keeps the endpoints of gantry's services in step with the cluster's EndpointSlices, as
/// kube-proxy and every in-cluster gateway do: list, then watch from the list's
/// resourceVersion (with bookmarks, so that a resumed watch starts close to now), list again
/// when the API says the version is gone (410), back off on any other failure, and keep the
/// last known endpoints while the API server cannot be reached.
public final class EndpointSliceWatcher: Sendable {
    public typealias Publish = @Sendable (_ service: String, _ endpoints: [EndpointAddress]) -> Void

    private struct State {
        var slices = EndpointSliceSet()
        var resourceVersion: String?
        var published: [String: [EndpointAddress]] = [:]
        var lists = 0
        var failures = 0
    }

    private let api: KubernetesAPI
    private let publish: Publish
    private let logger: Logger
    private let state = NIOLockedValueBox(State())
    private let firstBackoff: Duration
    private let maxBackoff: Duration
    /// How long a watch request asks the server to keep it open.
    private let watchSeconds: Int

    public init(
        api: KubernetesAPI, logger: Logger, firstBackoff: Duration = .milliseconds(500), maxBackoff: Duration = .seconds(30),
        watchSeconds: Int = 290, publish: @escaping Publish
    ) {
        self.api = api
        self.publish = publish
        self.logger = logger
        self.firstBackoff = firstBackoff
        self.maxBackoff = maxBackoff
        self.watchSeconds = watchSeconds
    }

    /// Lists made so far (the first, and one after each 410).
    public var lists: Int { state.withLockedValue { $0.lists } }
    public var resourceVersion: String? { state.withLockedValue { $0.resourceVersion } }

    private var collection: String {
        "/apis/discovery.k8s.io/v1/namespaces/\(api.cluster.namespace)/endpointslices?labelSelector=kubernetes.io%2Fservice-name"
    }

    /// Until cancelled.
    public func run() async {
        var delay = firstBackoff
        while !Task.isCancelled {
            do {
                if resourceVersion == nil { try await list() }
                try await watch()
                delay = firstBackoff
            } catch is Expired {
                logger.info("kubernetes: resourceVersion \(resourceVersion ?? "") expired (410 Gone); listing again")
                state.withLockedValue { $0.resourceVersion = nil }
            } catch is CancellationError {
                return
            } catch {
                let failures = state.withLockedValue { state in
                    state.failures += 1
                    return state.failures
                }
                logger.warning(
                    "kubernetes: \(error); keeping the last known endpoints, retrying in \(delay)",
                    metadata: ["failures": "\(failures)"])
                // Jitter spreads the retries of many gantry replicas after an API server restart.
                let jittered = delay * Double.random(in: 0.8...1.2)
                try? await Task.sleep(for: jittered)
                delay = min(delay * 2, maxBackoff)
            }
        }
    }

    /// Publishes these services' endpoints as the watch knows them (services a reload added).
    public func republish(_ services: some Sequence<String>) {
        for service in services {
            let endpoints = state.withLockedValue { state in
                state.published[service] = state.slices.endpoints(forService: service)
                return state.published[service]!
            }
            publish(service, endpoints)
        }
    }

    private struct Expired: Error {}

    private struct SliceList: Decodable {
        struct Metadata: Decodable { let resourceVersion: String? }
        let metadata: Metadata
        let items: [EndpointSlice]?
    }

    private func list() async throws {
        let body = try await api.get(collection)
        let list = try JSONDecoder().decode(SliceList.self, from: body)
        let touched = state.withLockedValue { state in
            state.lists += 1
            state.failures = 0
            state.resourceVersion = list.metadata.resourceVersion ?? ""
            return state.slices.replaceAll(list.items ?? [])
        }
        logger.info("kubernetes: \(list.items?.count ?? 0) EndpointSlices in namespace \(api.cluster.namespace) at resourceVersion \(list.metadata.resourceVersion ?? "")")
        publishChanges(touched)
    }

    /// A watch event's envelope: its type and the parts of its object that every type has.
    private struct Envelope: Decodable {
        struct Object: Decodable {
            struct Metadata: Decodable { let resourceVersion: String? }
            let metadata: Metadata?
            /// An ERROR event's Status.
            let code: Int?
            let message: String?
        }

        let type: String
        let object: Object
    }

    private struct SliceEvent: Decodable {
        let object: EndpointSlice
    }

    private func watch() async throws {
        let version = resourceVersion ?? ""
        let path = collection + "&watch=1&allowWatchBookmarks=true&timeoutSeconds=\(watchSeconds)&resourceVersion=\(version)"
        do {
            try await api.watch(path, idle: .seconds(watchSeconds + 30)) { [self] line in
                try self.handle(line)
                return true
            }
        } catch let error as KubernetesAPI.StatusError where error.status == 410 {
            throw Expired()
        }
    }

    private func handle(_ line: Data) throws {
        let envelope = try JSONDecoder().decode(Envelope.self, from: line)
        switch envelope.type {
        case "ERROR":
            if envelope.object.code == 410 { throw Expired() }
            throw KubernetesAPI.StatusError(status: envelope.object.code ?? 500, message: envelope.object.message ?? "")
        case "BOOKMARK":
            if let version = envelope.object.metadata?.resourceVersion { state.withLockedValue { $0.resourceVersion = version } }
        case "ADDED", "MODIFIED", "DELETED":
            let slice = try JSONDecoder().decode(SliceEvent.self, from: line).object
            let touched = state.withLockedValue { state in
                state.failures = 0
                if let version = slice.metadata.resourceVersion { state.resourceVersion = version }
                return envelope.type == "DELETED" ? state.slices.remove(slice) : state.slices.upsert(slice)
            }
            publishChanges(touched)
        default:
            logger.debug("kubernetes: ignored a watch event of type \(envelope.type)")
        }
    }

    /// Publishes the services whose endpoints differ from what was last published.
    private func publishChanges(_ services: Set<String>) {
        for service in services.sorted() {
            let endpoints: [EndpointAddress]? = state.withLockedValue { state in
                let now = state.slices.endpoints(forService: service)
                guard state.published[service] != now else { return nil }
                state.published[service] = now
                return now
            }
            guard let endpoints else { continue }
            logger.info("kubernetes: service \(service) has \(endpoints.count) endpoint(s): \(endpoints.map(\.description).joined(separator: ", "))")
            publish(service, endpoints)
        }
    }
}
