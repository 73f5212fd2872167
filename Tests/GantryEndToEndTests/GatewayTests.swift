import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Gateway policies across processes: two gantry instances enforce one limit through Redis.
@Suite(.serialized) struct GatewayTests {
    let directory = GantryProcess.scratchDirectory()

    @Test func twoGantryProcessesShareOneLimitThroughRedis() async throws {
        let redisPort = Int.random(in: 40_000...49_999)
        let redis = ChildProcess()
        redis.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        redis.arguments = ["--port", "\(redisPort)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        redis.standardOutput = FileHandle.nullDevice
        try redis.run()
        defer {
            kill(redis.processIdentifier, SIGKILL)
            redis.waitForEnd()
        }
        #expect(await eventually { (try? RawHTTPConnection(port: redisPort)) != nil })

        let echo = try GantryProcess(["example", "echo", "--port", "0"], directory: directory)
        defer { echo.stop() }
        let echoPort = try #require(await echo.waitForPort(after: "echo listening on http://127.0.0.1:", in: \.stdout))
        let config = directory.appendingPathComponent("shared.yaml")
        try """
        accessLog: {enabled: false}
        admin: {enabled: false}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway:
          policies:
            - name: shared
              rateLimit: {requests: 6, per: 1m, key: {header: X-Tenant}, store: {redis: 127.0.0.1:\(redisPort), onFailure: deny}}
          routes:
            - {path: /, service: app, policies: [shared]}
        services:
          - {name: app, endpoints: [127.0.0.1:\(echoPort)]}
        """.write(to: config, atomically: true, encoding: .utf8)
        let first = try GantryProcess(["up", config.path], directory: directory)
        let second = try GantryProcess(["up", config.path], directory: directory)
        defer {
            first.stop()
            second.stop()
        }
        let ports = [
            try #require(await first.waitForPort(after: "listener http on http://127.0.0.1:"), "\(first.stderr)"),
            try #require(await second.waitForPort(after: "listener http on http://127.0.0.1:"), "\(second.stderr)"),
        ]
        var codes: [String] = []
        for index in 0..<9 {
            let answer = try await run(
                "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Tenant: acme", "http://127.0.0.1:\(ports[index % 2])/x"])
            codes.append(answer.output)
        }
        #expect(codes == ["200", "200", "200", "200", "200", "200", "429", "429", "429"])
        let otherTenant = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Tenant: other", "http://127.0.0.1:\(ports[1])/x"])
        #expect(otherTenant.output == "200")
    }
}
