import Foundation
import GantryConfig
import GantryCore
import GantryHTTP
import Logging
import Synchronization

/// Keeps the key sets of jwt policies fresh: fetched at start (retried every second until the
/// first success, e.g. while the auth service's pods start), refreshed every
/// `refreshInterval`, fetched again early when a token names an unknown `kid` (at most once
/// per `minRefetchInterval`), and kept as they were when a fetch fails. New keys are
/// published to every event loop, where verification reads them without a lock.
public struct JWKSFetcher: Sendable {
    let plane: DataPlane
    let logger: Logger

    public init(plane: DataPlane, logger: Logger) {
        self.plane = plane
        self.logger = logger
    }

    private final class Wanted: Sendable {
        let flags: Mutex<Set<Int>> = Mutex([])
    }

    /// Runs until the task is cancelled.
    public func run() async {
        let jwtPolicies = plane.snapshot.policies.enumerated().compactMap { index, policy -> (Int, JWTPolicy)? in
            guard case .jwt(let jwt) = policy, jwt.keySource != nil else { return nil }
            return (index, jwt)
        }
        guard !jwtPolicies.isEmpty else { return }
        let wanted = Wanted()
        let requests = plane.gateway.refetchRequests
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await index in requests { _ = wanted.flags.withLock { $0.insert(index) } }
            }
            for (index, policy) in jwtPolicies {
                group.addTask { await keepFresh(index, policy, wanted: wanted) }
            }
        }
    }

    private func keepFresh(_ index: Int, _ policy: JWTPolicy, wanted: Wanted) async {
        var haveKeys = false
        var failing = false
        while !Task.isCancelled {
            let fetched = ContinuousClock.now
            do {
                let keys = try await fetch(policy)
                plane.setJWTKeys(keys, forPolicy: index)
                if !haveKeys || failing {
                    logger.info("JWT keys fetched", metadata: ["policy": "\(policy.name)", "keys": "\(keys.count)"])
                }
                haveKeys = true
                failing = false
            } catch {
                if !failing {
                    logger.warning("cannot fetch JWT keys; keeping the ones we have", metadata: ["policy": "\(policy.name)", "error": "\(error)"])
                }
                failing = true
            }
            let next = fetched + (haveKeys ? policy.refreshInterval : .seconds(1))
            // Wake at the next refresh, or earlier when a token asked for unknown keys.
            while !Task.isCancelled, ContinuousClock.now < next {
                try? await Task.sleep(for: .milliseconds(200))
                // A request waits for the interval to pass rather than being dropped.
                let due = ContinuousClock.now - fetched >= policy.minRefetchInterval
                if due, wanted.flags.withLock({ $0.remove(index) != nil }) { break }
            }
        }
    }

    private func fetch(_ policy: JWTPolicy) async throws -> [JWTKey] {
        let answer: (status: Int, body: Data)
        switch policy.keySource {
        case .service(let service, let path)?:
            guard let endpoint = plane.endpoints(forService: service)?.endpoints.randomElement() else {
                throw SimpleHTTPClient.Failure(description: "service \(service) has no ready endpoint yet")
            }
            answer = try await SimpleHTTPClient.request(.GET, host: endpoint.address.host, port: endpoint.address.port, path: path)
        case .url(let url)?:
            guard let parsed = URLComponents(string: url), let host = parsed.host else {
                throw SimpleHTTPClient.Failure(description: "bad URL \(url)")
            }
            let path = parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath
            answer = try await SimpleHTTPClient.request(
                .GET, host: host, port: parsed.port ?? 80, path: path + (parsed.percentEncodedQuery.map { "?\($0)" } ?? ""))
        case nil:
            return []
        }
        guard answer.status == 200 else { throw SimpleHTTPClient.Failure(description: "HTTP \(answer.status)") }
        let keys = try JWKSet.keys(from: answer.body)
        guard !keys.isEmpty else { throw SimpleHTTPClient.Failure(description: "the key set has no usable signing key") }
        return keys
    }
}
