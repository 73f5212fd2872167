import Foundation
import GantryExamples
import GantryHTTP
import GantryTestSupport
import NIOPosix
import Testing

/// `gantry up FILE --kubernetes`, the built binary: requests go to the endpoints the cluster's
/// EndpointSlices name, follow them as they change, and keep going while the API server is gone.
@Suite struct KubernetesModeTests {
    @Test func upKubernetesServesThroughTheEndpointsTheClusterNames() async throws {
        let api = try await FakeKubernetesAPI()
        var upstreams: [(server: EchoServer, port: Int)] = []
        for name in ["pod-a", "pod-b"] {
            let server = EchoServer(name: name)
            let channel = try await server.start(host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton)
            upstreams.append((server, channel.localAddress!.port!))
        }
        api.applyQuietly(
            FakeKubernetesAPI.slice("app-1", service: "app", port: upstreams[0].port, endpoints: [("127.0.0.1", true, nil, nil)]), named: "app-1")

        let directory = GantryProcess.scratchDirectory()
        try """
            apiVersion: v1
            kind: Config
            current-context: test
            clusters: [{name: fake, cluster: {server: "http://127.0.0.1:\(api.port)"}}]
            users: [{name: gantry, user: {token: in-cluster-token}}]
            contexts: [{name: test, context: {cluster: fake, user: gantry, namespace: shop}}]
            """.write(to: directory.appendingPathComponent("kubeconfig"), atomically: true, encoding: .utf8)
        // What `gantry export kubernetes` puts in the ConfigMap: services without pods or endpoints.
        try """
            accessLog: {enabled: false}
            admin: {port: 0}
            loadBalancer: {listeners: [{name: web, port: 0}]}
            gateway: {routes: [{path: /, service: app}]}
            services: [{name: app, retries: {attempts: 2}}]
            """.write(to: directory.appendingPathComponent("gantry.yaml"), atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(
            ["up", "gantry.yaml", "--kubernetes"], directory: directory,
            environment: ["KUBECONFIG": directory.appendingPathComponent("kubeconfig").path, "KUBERNETES_SERVICE_HOST": ""])
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener web on http://127.0.0.1:"), "\(gantry.stderr)")

        func answeredBy() async -> String? {
            guard let (status, body) = try? await SimpleHTTPClient.request(.GET, host: "127.0.0.1", port: port, path: "/"), status == 200 else {
                return nil
            }
            return ["pod-a", "pod-b"].first { String(decoding: body, as: UTF8.self).contains($0) }
        }
        #expect(await eventually { await answeredBy() == "pod-a" }, "\(gantry.stderr)")
        #expect(api.lists.first?.authorization == "Bearer in-cluster-token")
        #expect(api.lists.first?.uri.contains("/namespaces/shop/") == true)

        // A rollout: the old pod terminating (still serving, as nothing else is ready), then the
        // new pod ready. In this order no state between the two has both pods ready. Each of
        // gantry's loops takes the new endpoints when it next runs, so one loop may still send
        // to pod-a after another has answered from pod-b: the rollout is through once several
        // new connections in a row (spread over the loops) are answered by pod-b.
        api.apply("MODIFIED", FakeKubernetesAPI.slice("app-1", service: "app", port: upstreams[0].port, endpoints: [("127.0.0.1", false, true, true)]))
        api.apply("ADDED", FakeKubernetesAPI.slice("app-2", service: "app", port: upstreams[1].port, endpoints: [("127.0.0.1", true, nil, nil)]))
        #expect(
            await eventually {
                for _ in 0..<4 where await answeredBy() != "pod-b" { return false }
                return true
            })
        let before = upstreams[0].server.requestCount
        for _ in 0..<10 { #expect(await answeredBy() == "pod-b") }
        #expect(upstreams[0].server.requestCount == before)

        // A service the file gains later gets the endpoints the watch already knows.
        api.apply("ADDED", FakeKubernetesAPI.slice("reports-1", service: "reports", port: upstreams[0].port, endpoints: [("127.0.0.1", true, nil, nil)]))
        // First a change without it, which publishes endpoints for the file's services only.
        try """
            accessLog: {enabled: false}
            admin: {port: 0}
            loadBalancer: {listeners: [{name: web, port: 0}]}
            gateway: {routes: [{path: /, service: app}, {path: /other, service: app}]}
            services: [{name: app, retries: {attempts: 2}}]
            """.write(to: directory.appendingPathComponent("gantry.yaml"), atomically: true, encoding: .utf8)
        #expect(await eventually(timeout: .seconds(20)) { gantry.stderr.contains("ConfigApplied") }, "\(gantry.stderr)")
        try """
            accessLog: {enabled: false}
            admin: {port: 0}
            loadBalancer: {listeners: [{name: web, port: 0}]}
            gateway: {routes: [{path: /, service: app}, {path: /reports, service: reports}]}
            services: [{name: app, retries: {attempts: 2}}, {name: reports}]
            """.write(to: directory.appendingPathComponent("gantry.yaml"), atomically: true, encoding: .utf8)
        #expect(
            await eventually(timeout: .seconds(20)) {
                guard let (status, body) = try? await SimpleHTTPClient.request(.GET, host: "127.0.0.1", port: port, path: "/reports"), status == 200
                else { return false }
                return String(decoding: body, as: UTF8.self).contains("pod-a")
            }, "\(gantry.stderr)")

        // The API server goes away: the last known endpoints keep serving.
        await api.stop()
        for _ in 0..<10 { #expect(await answeredBy() == "pod-b") }
        #expect(await eventually { gantry.stderr.contains("keeping the last known endpoints") })
    }

    @Test func upKubernetesWithoutACLusterSaysWhereItLooked() async throws {
        let directory = GantryProcess.scratchDirectory()
        try "loadBalancer: {listeners: [{port: 0}]}\nservices: [{name: app}]\ngateway: {routes: [{path: /, service: app}]}\n"
            .write(to: directory.appendingPathComponent("gantry.yaml"), atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(
            ["up", "gantry.yaml", "--kubernetes"], directory: directory,
            environment: ["KUBECONFIG": directory.appendingPathComponent("missing").path, "KUBERNETES_SERVICE_HOST": ""])
        #expect(await gantry.waitForExit() == 2)
        #expect(gantry.stderr.contains("no Kubernetes API server"), "\(gantry.stderr)")
    }
}
