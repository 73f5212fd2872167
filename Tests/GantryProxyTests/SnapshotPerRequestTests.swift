import GantryConfig
import GantryTestSupport
import NIOPosix
import Testing

@testable import GantryProxy

/// A request keeps the configuration and endpoints it started with to its last byte, whatever
/// is installed meanwhile; requests that start after an installation use the new one; and state
/// that belongs to an unchanged policy outlives the installation.
extension LiveProxyTests {
    private func install(_ yaml: String, on harness: ProxyHarness) async throws {
        let snapshot = try ConfigLoader.load(yaml: yaml, file: "test.yaml", coreCount: 2).get().snapshot
        harness.plane.publish(snapshot)
        await harness.plane.settled()
    }

    private func echoes(_ ports: [Int]) -> (a: String, b: String, c: String) {
        ("127.0.0.1:\(ports[0])", "127.0.0.1:\(ports[1])", "127.0.0.1:\(ports[2])")
    }

    /// A request waits at its first policy (a token introspection the test holds) while a new
    /// configuration reorders the services, removes the request's second policy and replaces
    /// its service's endpoints. Once the answer comes, the request runs the rest of its own
    /// route's policies and reaches its own service's endpoint; a new request takes the new route.
    @Test func aRequestWaitingOnAPolicyFinishesOnItsOwnSnapshot() async throws {
        let introspection = try await HeldUpstream(group: MultiThreadedEventLoopGroup.singleton)
        defer { introspection.channel.close(promise: nil) }
        let check = "{name: check, oauth2: {introspection: {url: \"http://127.0.0.1:\(introspection.port)/introspect\"}}}"
        var ports: [Int] = []
        try await withProxy(
            upstreams: 3,
            yaml: { upstreams in
                ports = upstreams
                let (a, b, _) = self.echoes(upstreams)
                return """
                    loadBalancer: {listeners: [{name: http, port: 0}]}
                    tracing: {serverTiming: true}
                    gateway:
                      policies:
                        - \(check)
                        - {name: stamp, transform: {responseHeaders: {add: [{name: X-Stamp, value: v1}]}}}
                      routes:
                        - {name: alpha-route, path: /a, service: alpha, policies: [check, stamp]}
                        - {name: beta-route, path: /b, service: beta}
                    services:
                      - {name: alpha, endpoints: [\(a)]}
                      - {name: beta, endpoints: [\(b)]}
                    """
            }
        ) { harness in
            let (_, b, c) = echoes(ports)
            let waiting = Task {
                try await harness.get("/a", headers: ["Authorization: Bearer opaque-token", "X-Gantry-Trace: 1"])
            }
            #expect(await eventually { introspection.heldCount == 1 })
            try await install(
                """
                loadBalancer: {listeners: [{name: http, port: 0}]}
                tracing: {serverTiming: true}
                gateway:
                  policies:
                    - {name: stamp2, transform: {responseHeaders: {add: [{name: X-Stamp, value: v2}]}}}
                    - \(check)
                  routes:
                    - {name: alpha-route-2, path: /a, service: beta, policies: [stamp2]}
                services:
                  - {name: beta, endpoints: [\(b)]}
                  - {name: alpha, endpoints: [\(c)]}
                """, on: harness)
            introspection.answer(body: #"{"active": true, "scope": "read"}"#)
            let old = try await waiting.value
            #expect(old.status == 200)
            #expect(old.header("X-Stamp") == "v1")
            #expect(old.header("X-Echo-Server") == "echo-0")
            let timing = old.header("Server-Timing") ?? ""
            #expect(timing.contains(#"route;desc="alpha-route""#), "\(timing)")
            #expect(timing.contains(#"service;desc="alpha""#))
            #expect(timing.contains(#"policies;desc="oauth2 transform""#))

            let new = try await harness.get("/a", headers: ["X-Gantry-Trace: 1"])
            #expect(new.status == 200)
            #expect(new.header("X-Stamp") == "v2")
            #expect(new.header("X-Echo-Server") == "echo-1")
            #expect(new.header("Server-Timing")?.contains(#"route;desc="alpha-route-2""#) == true)
            #expect(try await harness.get("/b").status == 404)
        }
    }

    /// The first attempt reaches an endpoint the test holds; a new configuration reorders the
    /// services and replaces the service's endpoints; the test then resets the attempt. The
    /// retry goes to the other endpoint of the request's own service as it was, not to the
    /// service now at its index nor to the new endpoints.
    @Test func aRetryPicksFromTheEndpointsTheRequestStartedWith() async throws {
        let held = try await HeldUpstream(group: MultiThreadedEventLoopGroup.singleton)
        defer { held.channel.close(promise: nil) }
        var ports: [Int] = []
        try await withProxy(
            upstreams: 3,
            yaml: { upstreams in
                ports = upstreams
                let (a, b, _) = self.echoes(upstreams)
                return """
                    loadBalancer: {listeners: [{name: http, port: 0}]}
                    tracing: {serverTiming: true}
                    gateway:
                      routes:
                        - {name: first, path: /, service: alpha}
                    services:
                      - {name: alpha, endpoints: [127.0.0.1:\(held.port), \(a)], retries: {attempts: 2}}
                      - {name: beta, endpoints: [\(b)]}
                    """
            }
        ) { harness in
            let (_, b, c) = echoes(ports)
            // Round robin alternates between the two endpoints: a request or two, and one is held.
            var heldRequest: Task<RawResponse, any Error>?
            while held.heldCount == 0, harness.upstreams[0].requestCount < 4 {
                let answered = harness.upstreams[0].requestCount
                heldRequest = Task { try await harness.get("/", headers: ["X-Gantry-Trace: 1"]) }
                #expect(await eventually { held.heldCount == 1 || harness.upstreams[0].requestCount > answered })
            }
            #expect(held.heldCount == 1)
            try await install(
                """
                loadBalancer: {listeners: [{name: http, port: 0}]}
                tracing: {serverTiming: true}
                gateway:
                  routes:
                    - {name: second, path: /, service: beta}
                services:
                  - {name: beta, endpoints: [\(b)]}
                  - {name: alpha, endpoints: [\(c)], retries: {attempts: 2}}
                """, on: harness)
            let answeredBefore = harness.upstreams[0].requestCount
            held.reset()
            let retried = try await heldRequest!.value
            #expect(retried.status == 200)
            #expect(retried.header("X-Echo-Server") == "echo-0")
            #expect(harness.upstreams[0].requestCount == answeredBefore + 1)
            let timing = retried.header("Server-Timing") ?? ""
            #expect(timing.contains(#"attempts 2"#), "\(timing)")
            #expect(timing.contains(#"route;desc="first""#))

            let new = try await harness.get("/", headers: ["X-Gantry-Trace: 1"])
            #expect(new.header("X-Echo-Server") == "echo-1")
            #expect(new.header("Server-Timing")?.contains(#"route;desc="second""#) == true)
            #expect(harness.upstreams[2].requestCount == 0)
        }
    }

    /// A rate limit whose policy a new configuration leaves as it was keeps its buckets: the
    /// client stays limited. A changed policy starts afresh.
    @Test func anUnchangedPolicyKeepsItsStateAcrossAnInstallation() async throws {
        func yaml(_ ports: [Int], requests: Int, routeName: String) -> String {
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway:
              policies:
                - {name: limit, rateLimit: {requests: \(requests), per: 1h}}
                - {name: stamp, transform: {responseHeaders: {add: [{name: X-Route, value: \(routeName)}]}}}
              routes:
                - {name: \(routeName), path: /, service: app, policies: [limit, stamp]}
            services:
              - {name: app, endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]}
            """
        }
        var ports: [Int] = []
        try await withProxy(yaml: { upstreams in
            ports = upstreams
            return yaml(upstreams, requests: 2, routeName: "one")
        }) { harness in
            #expect(try await harness.get("/").status == 200)
            #expect(try await harness.get("/").status == 200)
            #expect(try await harness.get("/").status == 429)

            try await install(yaml(ports, requests: 2, routeName: "two"), on: harness)
            let limited = try await harness.get("/")
            #expect(limited.status == 429)

            try await install(yaml(ports, requests: 3, routeName: "three"), on: harness)
            let fresh = try await harness.get("/")
            #expect(fresh.status == 200)
            #expect(fresh.header("X-Route") == "three")
        }
    }
}
