import Foundation
import GantryTestSupport
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import GantryProxy

/// A real redis-server (Debian's package; `.ci/run` installs it) on a free loopback port.
final class RedisServer {
    let process = ChildProcess()
    let port: Int

    init(port: Int) throws {
        self.port = port
        process.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    func waitUntilReady() async -> Bool {
        await eventually { (try? RawHTTPConnection(port: self.port)) != nil }
    }

    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitForEnd()
    }
}

extension LiveProxyTests {
    static func sharedLimitYAML(redisPort: Int, onFailure: String = "allow") -> ([Int]) -> String {
        { ports in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            accessLog: {enabled: false}
            gateway:
              policies:
                - name: shared-five
                  rateLimit: {requests: 5, per: 1m, key: {route: true}, store: {redis: 127.0.0.1:\(redisPort), onFailure: \(onFailure)}}
              routes:
                - {host: example.com, path: /app, service: app, policies: [shared-five]}
            services:
              - name: app
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
        }
    }

    @Test func aSharedLimitHoldsAcrossGantryInstances() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let port = try await closedPort(group: group)
        try? await group.shutdownGracefully()
        let redis = try RedisServer(port: port)
        #expect(await redis.waitUntilReady())
        try await withProxy(yaml: Self.sharedLimitYAML(redisPort: port)) { first in
            try await withProxy(yaml: Self.sharedLimitYAML(redisPort: port)) { second in
                var statuses: [Int] = []
                for index in 0..<8 {  // alternating between two gantry data planes
                    let response = try await (index.isMultiple(of: 2) ? first : second).get("/app/x")
                    statuses.append(response.status)
                    if response.status == 200 {
                        let expected = #""shared-five";r=\#(4 - index);t=\#(12 * (index + 1))"#
                        #expect(response.header("RateLimit") == expected)
                    } else {
                        #expect(Int(response.header("Retry-After") ?? "") ?? 0 >= 1)
                    }
                }
                #expect(statuses == [200, 200, 200, 200, 200, 429, 429, 429])
                #expect(first.upstreamRequestCount + second.upstreamRequestCount == 5)
            }
        }
    }

    @Test func whenTheStoreIsDownTheLimitFailsOpenOrClosed() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let nothing = try await closedPort(group: group)
        try? await group.shutdownGracefully()
        try await withProxy(yaml: Self.sharedLimitYAML(redisPort: nothing, onFailure: "allow")) { harness in
            let response = try await harness.get("/app/x")
            #expect(response.status == 200)
        }
        try await withProxy(yaml: Self.sharedLimitYAML(redisPort: nothing, onFailure: "deny")) { harness in
            let refused = try await harness.get("/app/x")
            #expect(refused.status == 503)
            #expect(try refused.json()["error"] as? String == "rate_limit_store_unavailable")
            #expect(harness.upstreamRequestCount == 0)
        }
    }
}
