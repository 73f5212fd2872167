import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gantry up` and `gantry example echo` as separate processes, driven with curl.
@Suite(.serialized) struct UpTests {
    let directory = GantryProcess.scratchDirectory()

    /// Starts two echo upstreams and gantry in front of them.
    func startStack(extra: String = "") async throws -> (gantry: GantryProcess, port: Int, echoes: [GantryProcess]) {
        var echoes: [GantryProcess] = []
        var ports: [Int] = []
        for index in 0..<2 {
            let echo = try GantryProcess(["example", "echo", "--port", "0", "--name", "echo-\(index)"], directory: directory)
            let port = try #require(await echo.waitForPort(after: "echo listening on http://127.0.0.1:", in: \.stdout))
            echoes.append(echo)
            ports.append(port)
        }
        let config = directory.appendingPathComponent("gantry.yaml")
        try """
        loadBalancer: {listeners: [{name: http, port: 0}]}
        runtime: {shutdownGracePeriod: 10s}
        accessLog: {path: access.log}
        admin: {port: 0}
        gateway:
          routes:
            - {host: example.com, path: /app, service: app}
        services:
          - name: app
            endpoints: [127.0.0.1:\(ports[0]), 127.0.0.1:\(ports[1])]
        \(extra)
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "gantry did not start: \(gantry.stderr)")
        return (gantry, port, echoes)
    }

    @Test func servesAndShutsDownGracefullyOnSIGTERM() async throws {
        let (gantry, port, echoes) = try await startStack()
        defer { (echoes + [gantry]).forEach { $0.stop() } }

        let ok = try await run("curl", ["-s", "-H", "Host: example.com", "http://127.0.0.1:\(port)/app/dashboard"])
        #expect(ok.status == 0)
        #expect(ok.output.contains("\"path\":\"/app/dashboard\""))
        let missing = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/nowhere"])
        #expect(missing.output == "404")

        // A request in flight when SIGTERM arrives still gets its answer.
        async let slow = run(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "-H", "X-Echo-Delay: 1s", "http://127.0.0.1:\(port)/app/slow"])
        #expect(await eventually { gantry.stderr.isEmpty == false && (try? String(contentsOfFile: directory.appendingPathComponent("access.log").path, encoding: .utf8))?.contains("/app/dashboard") == true })
        try await Task.sleep(for: .milliseconds(200))  // let the slow request reach the upstream
        gantry.signal(SIGTERM)
        #expect(try await slow.output == "200")
        #expect(await gantry.waitForExit(timeout: .seconds(15)) == 0)
        let log = try String(contentsOfFile: directory.appendingPathComponent("access.log").path, encoding: .utf8)
        #expect(log.split(separator: "\n").count == 3)
        #expect(log.contains("\"path\":\"/app/slow\""))
    }

    @Test func aGigabyteEachWayStaysUnder64MiBResident() async throws {
        let (gantry, port, echoes) = try await startStack()
        defer { (echoes + [gantry]).forEach { $0.stop() } }
        let gigabyte = 1 << 30

        let upload = try await run(
            "bash",
            [
                "-c",
                "head -c \(gigabyte) /dev/zero | curl -s -T - -H 'Host: example.com' -H 'Expect:' http://127.0.0.1:\(port)/app/upload",
            ],
            timeout: .seconds(300))
        #expect(upload.status == 0)
        #expect(upload.output.contains("\"bodyBytes\":\(gigabyte)"), "\(upload.output.prefix(300))")

        let download = try await run(
            "curl",
            [
                "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "Host: example.com", "-H",
                "X-Echo-Bytes: \(gigabyte)", "http://127.0.0.1:\(port)/app/download",
            ],
            timeout: .seconds(300))
        #expect(download.output == "200 \(gigabyte)")

        let peak = try #require(gantry.peakResidentBytes)
        #expect(peak < 64 << 20, "gantry peaked at \(peak >> 20) MiB")
    }
}
