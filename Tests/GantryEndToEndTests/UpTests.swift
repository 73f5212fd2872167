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

    /// Out of file descriptors (its soft limit lowered below every one it holds), gantry stops
    /// accepting for a moment at a time instead of retrying a failing accept in a busy loop: a
    /// client's connection waits in the kernel's queue and is answered once descriptors are
    /// free again.
    @Test func outOfDescriptorsANewConnectionWaitsAndIsServed() async throws {
        let (gantry, port, echoes) = try await startStack()
        defer { (echoes + [gantry]).forEach { $0.stop() } }
        let warm = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "http://127.0.0.1:\(port)/app/x"])
        #expect(warm.output == "200")
        let limits = try String(contentsOfFile: "/proc/\(gantry.pid)/limits", encoding: .utf8)
        let soft = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }?.split(separator: " ", omittingEmptySubsequences: true)[3])
        // A new descriptor takes the lowest free number, and fails only when that is at or above
        // the limit. Any of gantry's descriptors may close in the window (the warm request's
        // connection, a health check's), so the limit is just above the standard streams, which
        // stay open: whatever closes then frees no number a new descriptor could take.
        let held = Set(try FileManager.default.contentsOfDirectory(atPath: "/proc/\(gantry.pid)/fd").compactMap { Int($0) })
        #expect(held.isSuperset(of: [0, 1, 2]))
        #expect(try await run("prlimit", ["--pid", "\(gantry.pid)", "--nofile=3:"]).status == 0)

        let before = Self.cpuTicks(gantry.pid)
        async let waiting = run(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "-H", "Host: example.com", "http://127.0.0.1:\(port)/app/y"])
        // The window over which gantry's CPU time is measured while it cannot accept.
        try await Task.sleep(for: .seconds(2))
        let spent = Self.cpuTicks(gantry.pid) - before
        #expect(spent < 50, "\(spent) ticks of CPU in 2 s: a busy loop on accept burns about 200")
        #expect(try await run("prlimit", ["--pid", "\(gantry.pid)", "--nofile=\(soft):"]).status == 0)
        let answer = try await waiting
        #expect(answer.output == "200", "curl: \(answer.output) \(answer.error); gantry: \(gantry.stderr.suffix(3000))")
    }

    /// A burst of new connections that comes while gantry cannot accept (stopped here; busy, or
    /// between two gantries on a takeover, in life) waits in the kernel's queue and is served.
    /// The listener's queue is gantry's 4,096, not the 128 NIO gives a socket it is handed: with
    /// 128, the kernel drops the SYNs beyond it, and each of those clients waits a second or more
    /// to try again (what made gantry's p99 at 1,000 connections reach past a second).
    @Test(.enabled(if: Self.somaxconn >= 256, "net.core.somaxconn caps every queue below the burst"))
    func aBurstOfNewConnectionsWaitsInTheQueueAndIsServed() async throws {
        let (gantry, port, echoes) = try await startStack()
        defer { (echoes + [gantry]).forEach { $0.stop() } }
        let warm = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "http://127.0.0.1:\(port)/app/x"])
        #expect(warm.output == "200")

        gantry.signal(SIGSTOP)
        var stopped = true
        defer { if stopped { gantry.signal(SIGCONT) } }
        let burst = 200
        var sockets: [Int32] = []
        defer { sockets.forEach { close($0) } }
        for _ in 0..<burst {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            try #require(fd >= 0)
            sockets.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(result == 0 || errno == EINPROGRESS, "connect: errno \(errno)")
        }
        // The kernel completes a handshake only while the accept queue has room.
        let queued = await eventually(timeout: .seconds(5)) { sockets.allSatisfy(Self.isConnected) }
        #expect(queued, "\(sockets.filter(Self.isConnected).count) of \(burst) connections completed while gantry was stopped")

        gantry.signal(SIGCONT)
        stopped = false
        let request = Array("GET /app/burst HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n".utf8)
        for fd in sockets { _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        var responses = [[UInt8]](repeating: [], count: burst)
        var ended = [Bool](repeating: false, count: burst)
        let answered = await eventually(timeout: .seconds(30)) {
            for (index, fd) in sockets.enumerated() where !ended[index] {
                var chunk = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                    if count > 0 { responses[index] += chunk[0..<count]; continue }
                    if count == 0 || errno != EAGAIN { ended[index] = true }
                    break
                }
            }
            return !ended.contains(false)
        }
        #expect(answered, "\(ended.filter { $0 }.count) of \(burst) connections ended")
        let ok = responses.filter { $0.starts(with: Array("HTTP/1.1 200".utf8)) }.count
        #expect(ok == burst, "\(ok) of \(burst) answered 200; gantry: \(gantry.stderr.suffix(2000))")
    }

    static let somaxconn = Int((try? String(contentsOfFile: "/proc/sys/net/core/somaxconn", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0

    /// A non-blocking socket's handshake is done (it is writable, with no error pending).
    static func isConnected(_ fd: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&entry, 1, 0) == 1, entry.revents & Int16(POLLOUT) != 0 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0
    }

    /// User and system CPU time of a process, in clock ticks (/proc/PID/stat's utime and stime).
    static func cpuTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
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

extension UpTests {
    /// ALB-style health checks: a target that fails them leaves the endpoints while still
    /// running, shows as unhealthy, and comes back once it passes again.
    @Test func aTargetFailingHealthChecksLeavesAndComesBack() async throws {
        let (gantry, port, echoes) = try await startStack(
            extra: """
                    healthCheck: {path: /healthz, interval: 200ms, timeout: 150ms, healthyThreshold: 2, unhealthyThreshold: 2, matcher: "200-299"}
                """)
        defer { (echoes + [gantry]).forEach { $0.stop() } }
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"))
        let echoPort = try #require(await echoes[0].waitForPort(after: "echo listening on http://127.0.0.1:", in: \.stdout))

        func servers(_ count: Int) async throws -> Set<String> {
            var seen: Set<String> = []
            for _ in 0..<count {
                let response = try await run("curl", ["-s", "-D", "-", "-o", "/dev/null", "-H", "Host: example.com", "http://127.0.0.1:\(port)/app/x"])
                if let line = response.output.split(separator: "\r\n").first(where: { $0.lowercased().hasPrefix("x-echo-server:") }) {
                    seen.insert(String(line.split(separator: " ").last ?? ""))
                }
            }
            return seen
        }
        #expect(try await servers(6) == ["echo-0", "echo-1"])

        // echo-0 starts failing its health checks (it still answers everything else).
        _ = try await run("curl", ["-s", "-H", "X-Echo-Set-Health: 503", "http://127.0.0.1:\(echoPort)/"])
        #expect(await eventually(timeout: .seconds(10)) { (try? await servers(6)) == ["echo-1"] })
        let table = try await run(GantryProcess.binary, ["get", "services", "--admin", "127.0.0.1:\(admin)"])
        #expect(table.output.contains("1/2") && table.output.contains("127.0.0.1:\(echoPort) (unhealthy)"), "\(table.output)")
        let events = try await run(GantryProcess.binary, ["get", "events", "--admin", "127.0.0.1:\(admin)"])
        #expect(events.output.contains("TargetUnhealthy") && events.output.contains("status 503, want 200-299"), "\(events.output)")

        // Healthy again after two passed checks.
        _ = try await run("curl", ["-s", "-H", "X-Echo-Set-Health: 200", "http://127.0.0.1:\(echoPort)/"])
        #expect(await eventually(timeout: .seconds(10)) { (try? await servers(6)) == ["echo-0", "echo-1"] })
    }
}

extension UpTests {
    /// The load balancer's checks of an HTTPS service speak HTTPS and verify the target as its
    /// requests do: a target whose certificate gantry cannot trust is taken out, and the event
    /// says why; the trusted one serves.
    @Test func anHTTPSServiceIsHealthCheckedOverTLS() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonHTTPSServer(pki: pki)
        // A timeout the Python server's handshake meets on a loaded machine: a check that timed
        // out first would mark the rogue target unhealthy for that reason instead.
        let check = "{path: /healthz, interval: 2s, timeout: 1500ms, healthyThreshold: 1, unhealthyThreshold: 1}"
        let config = directory.appendingPathComponent("gantry.yaml")
        try """
        loadBalancer: {listeners: [{name: http, port: 0}]}
        admin: {port: 0}
        gateway:
          routes:
            - {path: /secure, service: secure}
            - {path: /rogue, service: rogue}
        services:
          - name: secure
            endpoints: [127.0.0.1:\(server.port)]
            tls: {caFile: \(pki.ca), serverName: backend.internal}
            healthCheck: \(check)
          - name: rogue
            endpoints: [127.0.0.1:\(server.port)]
            tls: {caFile: \(pki.rogueCA)}
            healthCheck: \(check)
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "gantry did not start: \(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"))

        let secure = try await run("curl", ["-s", "http://127.0.0.1:\(port)/secure/x"])
        #expect(secure.output.contains(#""sni": "backend.internal""#), "\(secure.output)")
        var events = ""
        #expect(
            await eventually {
                events = (try? await run(GantryProcess.binary, ["get", "events", "--admin", "127.0.0.1:\(admin)"]))?.output ?? ""
                return events.contains("TargetUnhealthy") && events.contains("service/rogue") && events.contains("did not verify")
            }, "\(events)")
        let rogue = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/rogue/x"])
        #expect(rogue.output == "503")
        let table = try await run(GantryProcess.binary, ["get", "services", "--admin", "127.0.0.1:\(admin)"])
        #expect(table.output.contains("(unhealthy)"), "\(table.output)")
        #expect(!gantry.stderr.contains("service/secure"), "\(gantry.stderr)")
    }

    /// gRPC health (`grpc.health.v1`) as a pod probe and as the load balancer's check: a pod
    /// running a gRPC server becomes ready on `SERVING` and serves calls through gantry over
    /// `h2c`; a target that answers `NOT_SERVING` is taken out, and the event says why; so is one
    /// that accepts connections and never says a word (the check's timeout holds).
    @Test func grpcHealthIsAProbeAndAHealthCheck() async throws {
        let script = try PythonGRPC.writeServerScript(in: directory)
        let sick = try await PythonGRPC.server(["--sick"])
        let silent = try await PythonPeer.silent()
        let config = directory.appendingPathComponent("gantry.yaml")
        try """
        loadBalancer: {listeners: [{name: http, port: 0, http2: true}]}
        admin: {port: 0}
        gateway:
          routes:
            - {path: /test.Echo, service: echo}
            - {path: /sick, service: sick}
            - {path: /silent, service: silent}
        services:
          - name: echo
            protocol: h2c
            pods:
              command: [\(PythonGRPC.python), \(script)]
              replicas: 1
              port: 50051
              readinessProbe: {grpc: {port: 50051}, periodSeconds: 1}
            healthCheck: {grpc: {}, interval: 300ms, timeout: 250ms, healthyThreshold: 1, unhealthyThreshold: 1}
          - name: sick
            protocol: h2c
            endpoints: [127.0.0.1:\(sick.port)]
            healthCheck: {grpc: {service: ""}, interval: 200ms, timeout: 150ms, healthyThreshold: 1, unhealthyThreshold: 1}
          - name: silent
            protocol: h2c
            endpoints: [127.0.0.1:\(silent.port)]
            healthCheck: {grpc: {}, interval: 200ms, timeout: 150ms, healthyThreshold: 1, unhealthyThreshold: 1}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "gantry did not start: \(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"))

        var answer: [String: Any] = [:]
        #expect(
            await eventually(timeout: .seconds(30), every: .milliseconds(200)) {
                answer = (try? await PythonGRPC.call("127.0.0.1:\(port)", "Unary", "through a pod")) ?? [:]
                return answer["code"] as? String == "OK"
            }, "\(answer) \(gantry.stderr)")
        #expect(
            await eventually {
                let events = (try? await run(GantryProcess.binary, ["get", "events", "--admin", "127.0.0.1:\(admin)"]))?.output ?? ""
                return events.contains("TargetUnhealthy") && events.contains("service/sick") && events.contains("NOT_SERVING")
                    && events.contains("service/silent")
            })
        let table = try await run(GantryProcess.binary, ["get", "services", "--admin", "127.0.0.1:\(admin)"])
        #expect(table.output.contains("(unhealthy)"), "\(table.output)")
        #expect(!gantry.stderr.contains("service/echo"), "\(gantry.stderr)")
    }
}
