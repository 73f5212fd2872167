import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Gateway policies across processes: gantry replicas enforce one limit through Redis.
@Suite(.serialized) struct GatewayTests {
    let directory = GantryProcess.scratchDirectory()

    /// Three replicas, as a Deployment of gantry runs them behind one load balancer: a limit
    /// kept in Redis holds exactly across them, one request after another and all at once (the
    /// store's Lua script counts atomically on the server's clock).
    @Test func threeGantryProcessesShareOneLimitThroughRedis() async throws {
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
        let replicas = try (0..<3).map { _ in try GantryProcess(["up", config.path], directory: directory) }
        defer { for replica in replicas { replica.stop() } }
        var ports: [Int] = []
        for replica in replicas {
            ports.append(try #require(await replica.waitForPort(after: "listener http on http://127.0.0.1:"), "\(replica.stderr)"))
        }
        var codes: [String] = []
        for index in 0..<9 {
            let answer = try await run(
                "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Tenant: acme", "http://127.0.0.1:\(ports[index % 3])/x"])
            codes.append(answer.output)
        }
        #expect(codes == ["200", "200", "200", "200", "200", "200", "429", "429", "429"])

        // All at once: 9 clients, 3 on each replica, 20 requests each, for a tenant with 6.
        let concurrent = try await run(
            "python3",
            [
                "-c",
                """
                import http.client, sys, threading, collections
                ports = [int(p) for p in sys.argv[1:]]
                codes = collections.Counter()
                lock = threading.Lock()
                def client(port):
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    for _ in range(20):
                        connection.request("GET", "/x", headers={"X-Tenant": "globex"})
                        response = connection.getresponse()
                        response.read()
                        with lock:
                            codes[response.status] += 1
                threads = [threading.Thread(target=client, args=(ports[i % 3],)) for i in range(9)]
                [t.start() for t in threads]
                [t.join() for t in threads]
                print(codes[200], codes[429], sum(codes.values()))
                """,
            ] + ports.map(String.init))
        #expect(concurrent.output.trimmingCharacters(in: .whitespacesAndNewlines) == "6 174 180", "\(concurrent.output) \(concurrent.error)")
        let otherTenant = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Tenant: other", "http://127.0.0.1:\(ports[1])/x"])
        #expect(otherTenant.output == "200")
    }
}
