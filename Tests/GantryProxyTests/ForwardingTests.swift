import Foundation
import GantryTestSupport
import Testing

@testable import GantryProxy

/// Live tests: real listeners, real upstreams, real sockets. One suite, run serially, so that
/// timing-sensitive tests never compete with each other for the two cores.
@Suite(.serialized) struct LiveProxyTests {}

extension LiveProxyTests {
    private func echoedHeaders(_ response: RawResponse) throws -> [(String, String)] {
        let pairs = try response.json()["headers"] as? [[String]] ?? []
        return pairs.map { ($0[0], $0[1]) }
    }

    @Test func forwardsWithForwardingFactsAndRequestID() async throws {
        try await withProxy { harness in
            let response = try await harness.get("/app/x?b=2&a=1", headers: ["X-Custom: one", "x-custom: two"])
            #expect(response.status == 200)
            let echo = try response.json()
            #expect(echo["path"] as? String == "/app/x")
            #expect(echo["query"] as? String == "b=2&a=1")
            let headers = try echoedHeaders(response)
            #expect(headers.filter { $0.0.lowercased() == "x-custom" }.map(\.1) == ["one", "two"])
            #expect(headers.first { $0.0 == "x-forwarded-for" }?.1 == "127.0.0.1")
            #expect(headers.first { $0.0 == "x-forwarded-proto" }?.1 == "http")
            #expect(headers.first { $0.0 == "x-forwarded-host" }?.1 == "example.com")
            let sentID = headers.first { $0.0 == "x-request-id" }?.1
            #expect(sentID?.count == 36)
            #expect(response.header("x-request-id") == sentID)
        }
    }

    @Test func keepsASaneClientRequestIDAndReplacesAnInsaneOne() async throws {
        try await withProxy { harness in
            let kept = try await harness.get("/", headers: ["X-Request-ID: trace-abc-123"])
            #expect(kept.header("x-request-id") == "trace-abc-123")
            #expect(try echoedHeaders(kept).filter { $0.0.lowercased() == "x-request-id" }.map(\.1) == ["trace-abc-123"])
            let replaced = try await harness.get("/", headers: ["X-Request-ID: bad id with spaces"])
            #expect(replaced.header("x-request-id") != "bad id with spaces")
            #expect(try echoedHeaders(replaced).filter { $0.0.lowercased() == "x-request-id" }.map(\.1) == [replaced.header("x-request-id")!])
        }
    }

    @Test func appendsToAnExistingForwardedFor() async throws {
        try await withProxy { harness in
            let response = try await harness.get("/", headers: ["X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: https"])
            let headers = try echoedHeaders(response)
            #expect(headers.filter { $0.0 == "x-forwarded-for" }.map(\.1) == ["203.0.113.9, 127.0.0.1"])
            #expect(headers.filter { $0.0 == "x-forwarded-proto" }.map(\.1) == ["http"])
        }
    }

    @Test func removesHopByHopHeadersBothWays() async throws {
        try await withProxy { harness in
            let response = try await harness.get(
                "/",
                headers: [
                    "Connection: keep-alive, X-Secret-Hop", "Keep-Alive: timeout=5", "X-Secret-Hop: 1", "TE: trailers",
                    "Proxy-Connection: keep-alive", "Upgrade: websocket", "X-Kept: yes",
                    "X-Echo-Header: Keep-Alive: timeout=99", "X-Echo-Header: X-Upstream: kept",
                ])
            let names = Set(try echoedHeaders(response).map { $0.0.lowercased() })
            for hop in ["connection", "keep-alive", "x-secret-hop", "te", "proxy-connection", "upgrade"] {
                #expect(!names.contains(hop), "\(hop) reached the upstream")
            }
            #expect(names.contains("x-kept"))
            #expect(response.header("keep-alive") == nil)
            #expect(response.header("x-upstream") == "kept")
        }
    }

    @Test func normalisesThePathBeforeRoutingAndForwarding() async throws {
        try await withProxy(yaml: { ports in
            """
            loadBalancer: {listeners: [{port: 0}]}
            gateway:
              routes:
                - {path: /auth, service: auth}
            services:
              - {name: auth, endpoints: [127.0.0.1:\(ports[0])]}
            """
        }) { harness in
            let response = try await harness.get("/app/../auth//login?x=1")
            #expect(response.status == 200)
            #expect(try response.json()["path"] as? String == "/auth/login")
            let outside = try await harness.get("/app/../x")
            #expect(outside.status == 404)
        }
    }

    @Test func routesByHostAndPathAndAnswers404AsJSON() async throws {
        try await withProxy(yaml: { ports in
            """
            loadBalancer: {listeners: [{port: 0}]}
            gateway:
              routes:
                - {host: example.com, path: /app, service: app}
                - {host: example.com, path: /auth, service: auth}
            services:
              - {name: app, endpoints: [127.0.0.1:\(ports[0])]}
              - {name: auth, endpoints: [127.0.0.1:\(ports[1])]}
            """
        }) { harness in
            #expect(try await harness.get("/app/dashboard").header("x-echo-server") == "echo-0")
            #expect(try await harness.get("/auth/login", host: "EXAMPLE.com:8080").header("x-echo-server") == "echo-1")
            let missing = try await harness.get("/other")
            #expect(missing.status == 404)
            #expect(missing.header("content-type") == "application/json")
            let body = try missing.json()
            #expect(body["error"] as? String == "no_route")
            #expect(body["requestId"] as? String == missing.header("x-request-id"))
            #expect(try await harness.get("/app", host: "other.com").status == 404)
            #expect(harness.upstreamRequestCount == 2)
        }
    }

    @Test func roundRobinOverEndpointsAndConnectionsAreReused() async throws {
        try await withProxy(upstreams: 3) { harness in
            let connection = try harness.connect()
            var servers: [String] = []
            for _ in 0..<30 {
                try connection.send(request(["GET / HTTP/1.1", "Host: a"]))
                servers.append(try await connection.readResponse().header("x-echo-server") ?? "")
            }
            for name in ["echo-0", "echo-1", "echo-2"] { #expect(servers.filter { $0 == name }.count == 10) }
            // Consecutive picks on one loop cycle through all three.
            #expect(Set(servers[0..<3]).count == 3)
            let counters = await harness.plane.counters()
            #expect(counters[.upstreamConnects] <= 3)
            #expect(counters[.upstreamReused] >= 27)
        }
    }

    @Test func consistentHashKeepsAKeyOnOneEndpoint() async throws {
        try await withProxy(upstreams: 4, yaml: { ports in
            """
            loadBalancer: {listeners: [{port: 0}]}
            gateway: {routes: [{path: /, service: app}]}
            services:
              - name: app
                loadBalancing: {consistentHash: {header: X-User}}
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
        }) { harness in
            var placements: [String: Set<String>] = [:]
            for round in 0..<3 {
                for user in 0..<20 {
                    let server = try await harness.get("/", headers: ["X-User: user-\(user)"]).header("x-echo-server") ?? ""
                    placements["user-\(user)", default: []].insert(server)
                    _ = round
                }
            }
            #expect(placements.values.allSatisfy { $0.count == 1 })
            #expect(Set(placements.values.flatMap { $0 }).count > 1)
        }
    }
}
