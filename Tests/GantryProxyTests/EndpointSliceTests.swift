import Foundation
import GantryCore
import GantryKubernetes
import GantryTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOSSL
import Testing

/// `gantry up --kubernetes`: which endpoints a service gets from its EndpointSlices, and the
/// list/watch client against a local server speaking the API's wire format (no Kubernetes API
/// server can run here).
@Suite struct EndpointSliceTests {
    typealias Condition = (address: String, ready: Bool?, serving: Bool?, terminating: Bool?)

    static func slice(_ name: String, service: String = "app", port: Int = 8080, _ endpoints: [Condition]) throws -> EndpointSlice {
        let data = try JSONSerialization.data(withJSONObject: FakeKubernetesAPI.slice(name, service: service, port: port, endpoints: endpoints))
        return try JSONDecoder().decode(EndpointSlice.self, from: data)
    }

    static func addresses(_ endpoints: [EndpointAddress]) -> [String] { endpoints.map(\.description) }

    // MARK: Choosing endpoints

    @Test func readyEndpointsOfEverySliceServeAndTerminatingOnesOnlyWhenNoneIsReady() throws {
        var set = EndpointSliceSet()
        let touched = set.replaceAll([
            try Self.slice("app-a", [("10.0.0.1", true, true, false), ("10.0.0.2", false, true, true), ("10.0.0.3", nil, nil, nil)]),
            try Self.slice("app-b", port: 9090, [("10.0.1.1", true, nil, nil), ("10.0.1.2", false, false, false)]),
            try Self.slice("other", service: "other", [("10.0.9.9", true, true, false)]),
        ])
        #expect(touched == ["app", "other"])
        // A nil condition reads as ready; a not-ready endpoint that is not terminating serves nothing.
        #expect(Self.addresses(set.endpoints(forService: "app")) == ["10.0.0.1:8080", "10.0.0.3:8080", "10.0.1.1:9090"])

        // A rollout's last old pods: terminating but serving, used because nothing else is ready.
        set.upsert(try Self.slice("app-a", [("10.0.0.1", false, true, true), ("10.0.0.2", false, false, true)]))
        set.remove(try Self.slice("app-b", []))
        #expect(Self.addresses(set.endpoints(forService: "app")) == ["10.0.0.1:8080"])
        // A new pod becomes ready: the terminating one is no longer used.
        set.upsert(try Self.slice("app-c", [("10.0.2.1", true, true, false)]))
        #expect(Self.addresses(set.endpoints(forService: "app")) == ["10.0.2.1:8080"])
        #expect(set.endpoints(forService: "absent").isEmpty)
    }

    @Test func theHTTPPortIsChosenWhenASliceHasSeveral() throws {
        var object = FakeKubernetesAPI.slice("app-a", service: "app", endpoints: [("10.0.0.1", true, nil, nil)])
        object["ports"] = [["name": "metrics", "port": 9100, "protocol": "TCP"], ["name": "dns", "port": 53, "protocol": "UDP"], ["name": "http", "port": 8080, "protocol": "TCP"]]
        let slice = try JSONDecoder().decode(EndpointSlice.self, from: JSONSerialization.data(withJSONObject: object))
        var set = EndpointSliceSet()
        set.upsert(slice)
        #expect(Self.addresses(set.endpoints(forService: "app")) == ["10.0.0.1:8080"])
    }

    // MARK: The watch

    /// What the watcher published, service by service, in order.
    final class Published: Sendable {
        private let state = NIOLockedValueBox<[(String, [String])]>([])

        func record(_ service: String, _ endpoints: [EndpointAddress]) {
            state.withLockedValue { $0.append((service, EndpointSliceTests.addresses(endpoints))) }
        }

        func latest(_ service: String) -> [String]? {
            state.withLockedValue { $0.last { $0.0 == service }?.1 }
        }

        var count: Int { state.withLockedValue { $0.count } }
    }

    /// A watcher running against a fresh API server that holds one slice of `app`, 10.0.0.1:8080.
    struct Watching {
        let api: FakeKubernetesAPI
        let published = Published()
        let watcher: EndpointSliceWatcher
        let running: Task<Void, Never>

        init(credential: KubernetesCluster.Credential = .token("t0k3n"), refusing refusals: [Int] = []) async throws {
            api = try await FakeKubernetesAPI()
            api.applyQuietly(FakeKubernetesAPI.slice("app-a", service: "app", endpoints: [("10.0.0.1", true, nil, nil)]), named: "app-a")
            for status in refusals { api.refuse(status) }
            var cluster = KubernetesCluster(scheme: "http", host: "127.0.0.1", port: api.port, namespace: "shop")
            cluster.credential = credential
            let published = self.published
            watcher = EndpointSliceWatcher(
                api: try KubernetesAPI(cluster: cluster), logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                firstBackoff: .milliseconds(50), maxBackoff: .milliseconds(400)
            ) { published.record($0, $1) }
            let watcher = self.watcher
            running = Task { await watcher.run() }
        }

        /// The first list published its endpoints and a watch is open.
        func started() async -> Bool {
            await eventually { published.latest("app") == ["10.0.0.1:8080"] && api.openWatches == 1 }
        }
    }

    @Test func aListThenAWatchFromItsVersionKeepEveryServiceCurrent() async throws {
        let watching = try await Watching()
        defer { watching.running.cancel() }
        let (api, published, watcher) = (watching.api, watching.published, watching.watcher)

        #expect(await watching.started())
        let list = try #require(api.lists.first)
        #expect(list.uri.hasPrefix("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices?"))
        #expect(list.query("labelSelector") == "kubernetes.io/service-name")
        #expect(list.authorization == "Bearer t0k3n")
        let watch = try #require(api.watches.first)
        #expect(watch.query("resourceVersion") == "101")
        #expect(watch.query("allowWatchBookmarks") == "true")
        #expect(watch.query("timeoutSeconds") != nil)

        api.apply("ADDED", FakeKubernetesAPI.slice("app-b", service: "app", endpoints: [("10.0.0.2", true, nil, nil)]))
        #expect(await eventually { published.latest("app") == ["10.0.0.1:8080", "10.0.0.2:8080"] })
        api.apply("MODIFIED", FakeKubernetesAPI.slice("app-a", service: "app", endpoints: [("10.0.0.1", false, true, true)]))
        #expect(await eventually { published.latest("app") == ["10.0.0.2:8080"] })
        api.apply("DELETED", FakeKubernetesAPI.slice("app-b", service: "app", endpoints: []))
        // Only the terminating-but-serving endpoint is left: it serves until it is gone.
        #expect(await eventually { published.latest("app") == ["10.0.0.1:8080"] })
        #expect(api.lists.count == 1)
        #expect(watcher.resourceVersion == String(api.resourceVersion))
    }

    @Test func aDroppedWatchResumesFromTheLastBookmarkWithoutListing() async throws {
        let watching = try await Watching()
        defer { watching.running.cancel() }
        let (api, published, watcher) = (watching.api, watching.published, watching.watcher)
        #expect(await watching.started())
        api.bookmark()
        let bookmark = String(api.resourceVersion)
        #expect(await eventually { watcher.resourceVersion == bookmark })

        api.dropWatches()
        #expect(await eventually { api.watches.count == 2 && api.openWatches == 1 })
        #expect(api.watches[1].query("resourceVersion") == bookmark)
        #expect(api.lists.count == 1)
        api.apply("MODIFIED", FakeKubernetesAPI.slice("app-a", service: "app", endpoints: [("10.0.0.7", true, nil, nil)]))
        #expect(await eventually { published.latest("app") == ["10.0.0.7:8080"] })
    }

    @Test func anExpiredVersionListsAgainAndCatchesUpWithWhatTheWatchMissed() async throws {
        let watching = try await Watching()
        defer { watching.running.cancel() }
        let (api, published) = (watching.api, watching.published)
        #expect(await watching.started())

        // The watch missed a change, then its version expired (ERROR 410 in the stream).
        api.applyQuietly(nil, named: "app-a")
        api.applyQuietly(FakeKubernetesAPI.slice("app-z", service: "app", endpoints: [("10.0.0.9", true, nil, nil)]), named: "app-z")
        api.expire()
        #expect(await eventually { api.lists.count == 2 && api.openWatches == 1 })
        #expect(await eventually { published.latest("app") == ["10.0.0.9:8080"] })

        // The same when the version is gone before the watch opens (HTTP 410).
        api.applyQuietly(FakeKubernetesAPI.slice("app-y", service: "app", endpoints: [("10.0.0.8", true, nil, nil)]), named: "app-y")
        api.dropWatches()
        api.expire()
        #expect(await eventually { api.lists.count == 3 && api.openWatches == 1 })
        #expect(await eventually { published.latest("app") == ["10.0.0.8:8080", "10.0.0.9:8080"] })
    }

    @Test func refusalsAreRetriedWithBackoffAndARotatedTokenIsReadAgain() async throws {
        let tokenFile = GantryProcess.scratchDirectory().path + "/token"
        try "old-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let watching = try await Watching(credential: .tokenFile(tokenFile), refusing: [401, 403, 500])
        defer { watching.running.cancel() }
        let api = watching.api
        #expect(await watching.started())
        #expect(api.lists.count == 4)
        #expect(api.lists.allSatisfy { $0.authorization == "Bearer old-token" })

        // kubelet replaces the token: the next request carries the new one.
        try "new-token".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        api.dropWatches()
        #expect(await eventually { api.watches.count >= 2 })
        #expect(api.watches.last?.authorization == "Bearer new-token")
    }

    @Test func theLastKnownEndpointsStayWhileTheAPIServerIsGone() async throws {
        let watching = try await Watching()
        defer { watching.running.cancel() }
        let (api, published) = (watching.api, watching.published)
        #expect(await watching.started())
        let before = published.count
        await api.stop()
        // Retries fail (connection refused) for a while; nothing is withdrawn meanwhile.
        try await Task.sleep(for: .milliseconds(800))
        #expect(published.count == before)
        #expect(published.latest("app") == ["10.0.0.1:8080"])
    }

    // MARK: Credentials

    @Test func aKubeconfigGivesTheServerTheCAAndTheCurrentContextsUser() async throws {
        let pki = try await TestPKI.make()
        let directory = GantryProcess.scratchDirectory().path
        let ca = try Data(contentsOf: URL(fileURLWithPath: pki.ca)).base64EncodedString()
        try """
            apiVersion: v1
            kind: Config
            current-context: shop
            clusters:
              - name: other
                cluster: {server: "https://10.9.9.9:6443"}
              - name: local
                cluster:
                  server: https://127.0.0.1:6443
                  certificate-authority-data: \(ca)
                  tls-server-name: backend.internal
            users:
              - name: me
                user: {client-certificate: \(pki.clientCertificate), client-key: \(pki.clientKey), tokenFile: token}
            contexts:
              - name: shop
                context: {cluster: local, user: me, namespace: shop}
            """.write(toFile: directory + "/config", atomically: true, encoding: .utf8)
        try "abc".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        let cluster = try KubernetesCluster.discover(environment: ["KUBECONFIG": directory + "/config"])
        #expect(cluster.host == "127.0.0.1" && cluster.port == 6443 && cluster.scheme == "https")
        #expect(cluster.namespace == "shop")
        #expect(cluster.serverName == "backend.internal")
        #expect(cluster.certificateAuthority == Array(try Data(contentsOf: URL(fileURLWithPath: pki.ca))))
        #expect(cluster.clientKey != nil && cluster.clientCertificate != nil)
        guard case .tokenFile(let path) = cluster.credential else {
            Issue.record("expected the token file, got \(cluster.credential)")
            return
        }
        #expect(path == directory + "/token")

        try "current-context: nowhere\ncontexts: []\n".write(toFile: directory + "/broken", atomically: true, encoding: .utf8)
        #expect(throws: KubernetesCluster.Failure.self) { try KubernetesCluster.discover(environment: ["KUBECONFIG": directory + "/broken"]) }
        #expect(throws: KubernetesCluster.Failure.self) { try KubernetesCluster.discover(environment: ["HOME": directory + "/none"]) }
    }

    @Test func inAPodTheServiceAccountIsUsed() throws {
        let directory = GantryProcess.scratchDirectory().path
        try "sa-token".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
        try "shop\n".write(toFile: directory + "/namespace", atomically: true, encoding: .utf8)
        let cluster = try KubernetesCluster.discover(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "/nonexistent"],
            serviceAccountDirectory: directory)
        #expect(cluster.host == "10.96.0.1" && cluster.port == 443 && cluster.namespace == "shop")
        guard case .tokenFile(let path) = cluster.credential else {
            Issue.record("expected the service account's token file")
            return
        }
        #expect(path == directory + "/token")
    }

    @Test func anExecCredentialPluginGivesTheTokenForEachRequest() async throws {
        let api = try await FakeKubernetesAPI()
        let directory = GantryProcess.scratchDirectory().path
        // A client-go credential plugin, as `aws eks get-token` is one: it prints an ExecCredential.
        try """
            #!/bin/sh
            printf '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": {"token": "%s-%s"}}' "$1" "$CLUSTER_NAME"
            """.write(toFile: directory + "/get-token", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/get-token")
        try """
            current-context: eks
            clusters: [{name: shop, cluster: {server: "http://127.0.0.1:\(api.port)"}}]
            users: [{name: me, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: \(directory)/get-token, args: [issued], env: [{name: CLUSTER_NAME, value: shop}]}}}]
            contexts: [{name: eks, context: {cluster: shop, user: me}}]
            """.write(toFile: directory + "/config", atomically: true, encoding: .utf8)
        let cluster = try KubernetesCluster.discover(environment: ["KUBECONFIG": directory + "/config"])
        _ = try await KubernetesAPI(cluster: cluster).get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices")
        #expect(api.lists.last?.authorization == "Bearer issued-shop")

        // A plugin that fails gives no request at all, and says which plugin.
        try "#!/bin/sh\nexit 3\n".write(toFile: directory + "/get-token", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/get-token")
        let failure = await #expect(throws: KubernetesCluster.Failure.self) {
            _ = try await KubernetesAPI(cluster: cluster).get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices")
        }
        #expect(failure?.description.contains("get-token gave no token (exit 3)") == true, "\(String(describing: failure))")
        #expect(api.lists.count == 1)
    }

    @Test func theAPIIsReachedOverTLSVerifiedAgainstTheClusterCA() async throws {
        let pki = try await TestPKI.make()
        let context = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(pki.serverCertificate).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: pki.serverKey, format: .pem))))
        let api = try await FakeKubernetesAPI(tls: context)
        api.applyQuietly(FakeKubernetesAPI.slice("app-a", service: "app", endpoints: [("10.0.0.1", true, nil, nil)]), named: "app-a")
        var cluster = KubernetesCluster(scheme: "https", host: "127.0.0.1", port: api.port, namespace: "shop")
        cluster.certificateAuthority = Array(try Data(contentsOf: URL(fileURLWithPath: pki.ca)))
        cluster.credential = .token("tls-token")
        let body = try await KubernetesAPI(cluster: cluster).get("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices")
        #expect(String(decoding: body, as: UTF8.self).contains("10.0.0.1"))
        #expect(api.lists.last?.authorization == "Bearer tls-token")

        // A server whose certificate the cluster CA did not sign is refused.
        cluster.certificateAuthority = Array(try Data(contentsOf: URL(fileURLWithPath: pki.rogueCA)))
        await #expect(throws: (any Error).self) {
            _ = try await KubernetesAPI(cluster: cluster).get("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices")
        }
        #expect(api.lists.count == 1)
    }
}
