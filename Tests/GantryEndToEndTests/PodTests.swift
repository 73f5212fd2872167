import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Pods under load: scaling, rollouts and crashes while a real client sends requests.
@Suite(.serialized) struct PodTests {
    let directory = GantryProcess.scratchDirectory()

    struct Pod: Decodable {
        let name: String
        let service: String
        let ready: Bool
        let restarts: Int
        let pid: Int32?
        let log: String
        let reason: String
        let address: String
    }

    struct Running {
        let gantry: GantryProcess
        let port: Int
        let admin: Int
    }

    func start(replicas: Int, env: String = "") async throws -> Running {
        let config = directory.appendingPathComponent("pods.yaml")
        try """
        runtime: {shutdownGracePeriod: 10s}
        accessLog: {enabled: false}
        admin: {port: 0}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway:
          routes:
            - {host: example.com, path: /, service: app}
        services:
          - name: app
            clusterIP: None
            loadBalancing: leastRequest
            pods:
              command: [gantry, example, echo]
              env: [\(env)]
              replicas: \(replicas)
              terminationGracePeriodSeconds: 10
              readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        return Running(gantry: gantry, port: port, admin: admin)
    }

    func pods(_ admin: Int) async throws -> [Pod] {
        let answer = try await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/pods"])
        return (try? JSONDecoder().decode([Pod].self, from: Data(answer.output.utf8))) ?? []
    }

    func waitForReady(_ admin: Int, count: Int, excluding old: Set<String> = [], timeout: Duration = .seconds(60)) async -> Bool {
        await eventually(timeout: timeout) {
            guard let all = try? await pods(admin) else { return false }
            return all.count == count && all.allSatisfy { $0.ready && !old.contains($0.name) }
        }
    }

    func post(_ admin: Int, _ path: String, _ body: String = "{}") async throws {
        let answer = try await run("curl", ["-sf", "-X", "POST", "-d", body, "http://127.0.0.1:\(admin)\(path)"])
        #expect(answer.status == 0, "POST \(path): \(answer.output) \(answer.error)")
    }

    func stopAndCheckNothingIsLeft(_ running: Running, pids: Set<Int32>) async throws {
        running.gantry.signal(SIGTERM)
        #expect(await running.gantry.waitForExit() == 0, "\(running.gantry.stderr)")
        // A pod taken over from a gantry that has exited is init's child: it may wait a moment
        // to be reaped, which `isRunning` does not count.
        for pid in pids {
            #expect(!Self.isRunning(pid), "pod process \(pid) outlived gantry")
        }
    }

    @Test func scalingAndRolloutsUnderLoadDropNothing() async throws {
        let running = try await start(replicas: 4)
        defer { running.gantry.stop() }
        #expect(await waitForReady(running.admin, count: 4), "\(running.gantry.stderr)")
        var pids = Set(try await pods(running.admin).compactMap(\.pid))

        let load = try LoadGenerator(port: running.port, posts: true, directory: directory)
        #expect(await load.waitForProgress(200))

        try await post(running.admin, "/api/services/app/scale", #"{"replicas": 1}"#)
        #expect(await waitForReady(running.admin, count: 1))
        #expect(await load.waitForProgress(200))

        try await post(running.admin, "/api/services/app/scale", #"{"replicas": 4}"#)
        #expect(await waitForReady(running.admin, count: 4))
        pids.formUnion(try await pods(running.admin).compactMap(\.pid))
        #expect(await load.waitForProgress(200))

        let before = Set(try await pods(running.admin).map(\.name))
        try await post(running.admin, "/api/services/app/restart")
        #expect(await waitForReady(running.admin, count: 4, excluding: before, timeout: .seconds(90)))
        pids.formUnion(try await pods(running.admin).compactMap(\.pid))
        #expect(await load.waitForProgress(200))

        let result = try await load.stop()
        #expect(result.failureCount == 0, "failed requests: \(result.failures)")
        #expect(result.ok >= 800)
        print("scale 4→1→4 and rollout restart under load: \(result.ok) requests, \(result.failureCount) failed")
        try await stopAndCheckNothingIsLeft(running, pids: pids)
    }

    @Test func aKilledPodIsRestartedAndItsRequestsRetried() async throws {
        let running = try await start(replicas: 3)
        defer { running.gantry.stop() }
        #expect(await waitForReady(running.admin, count: 3), "\(running.gantry.stderr)")
        let load = try LoadGenerator(port: running.port, directory: directory)
        #expect(await load.waitForProgress(200))

        let victim = try #require(try await pods(running.admin).first)
        let pid = try #require(victim.pid)
        #expect(kill(pid, SIGKILL) == 0)
        let restarted = await eventually(timeout: .seconds(60)) {
            guard let all = try? await pods(running.admin) else { return false }
            return all.count == 3 && all.allSatisfy(\.ready) && all.contains { $0.name == victim.name && $0.restarts == 1 && $0.pid != pid }
        }
        #expect(restarted, "\(running.gantry.stderr)")
        #expect(await load.waitForProgress(200))

        let result = try await load.stop()
        #expect(result.failureCount == 0, "failed requests: \(result.failures)")
        print("kill -9 of a pod under load: \(result.ok) requests, \(result.failureCount) failed")
        let pids = Set(try await pods(running.admin).compactMap(\.pid)).union([pid])
        try await stopAndCheckNothingIsLeft(running, pids: pids)
    }

    /// Whether a process runs (exited and not yet reaped counts as gone).
    static func isRunning(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return false
        }
        return !["Z", "X"].contains(stat[stat.index(after: close)...].split(separator: " ").first ?? "Z")
    }

    /// As the kubelet after a restart: the next `gantry up` on the same state directory takes
    /// the pods a killed gantry left over (same processes, same addresses), probes them and
    /// serves through them; pods started from another template are taken over, then replaced.
    @Test func podsLeftByAKilledGantryAreAdoptedByTheNextOne() async throws {
        let first = try await start(replicas: 2)
        #expect(await waitForReady(first.admin, count: 2), "\(first.gantry.stderr)")
        let orphans = Set(try await pods(first.admin).compactMap(\.pid))
        #expect(orphans.count == 2)
        first.gantry.signal(SIGKILL)
        _ = await first.gantry.waitForExit()
        // Nothing stopped them: they run on without their gantry.
        #expect(orphans.allSatisfy(Self.isRunning))

        let second = try await start(replicas: 2)
        defer { second.gantry.stop() }
        #expect(await waitForReady(second.admin, count: 2), "\(second.gantry.stderr)")
        #expect(second.gantry.stderr.components(separatedBy: "Adopted").count == 3, "\(second.gantry.stderr)")
        #expect(Set(try await pods(second.admin).compactMap(\.pid)) == orphans, "the same processes, not new ones")
        // Requests reach them through the new gantry.
        var servers = Set<String>()
        for _ in 0..<20 {
            let answer = try await run("curl", ["-sf", "-H", "Host: example.com", "http://127.0.0.1:\(second.port)/who"])
            if let server = (try? JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any])?["server"] as? String {
                servers.insert(server)
            }
        }
        #expect(servers == Set(try await pods(second.admin).map(\.name)))
        second.gantry.signal(SIGKILL)
        _ = await second.gantry.waitForExit()

        // A changed template: the pods are taken over, then replaced by a rollout.
        let third = try await start(replicas: 2, env: "{name: COLOUR, value: blue}")
        defer { third.gantry.stop() }
        #expect(await eventually(timeout: .seconds(60)) {
            guard let all = try? await pods(third.admin) else { return false }
            return all.count == 2 && all.allSatisfy(\.ready) && Set(all.compactMap(\.pid)).isDisjoint(with: orphans)
        }, "\(third.gantry.stderr)")
        #expect(third.gantry.stderr.contains("started from another template"), "\(third.gantry.stderr)")
        #expect(await eventually(timeout: .seconds(15)) { !orphans.contains(where: Self.isRunning) })
        try await stopAndCheckNothingIsLeft(third, pids: Set(try await pods(third.admin).compactMap(\.pid)))
    }

    /// `gantry up --takeover`, as a gantry upgrade runs it: the new process receives the
    /// listening sockets and the pods; the old one finishes its requests and exits 0; a real
    /// client under load (half of its requests POSTs that cannot be retried) sees no failure,
    /// and no pod restarts.
    @Test func takeoverMovesListenersAndPodsToANewGantryWithoutDroppingARequest() async throws {
        let first = try await start(replicas: 2)
        defer { first.gantry.stop() }
        #expect(await waitForReady(first.admin, count: 2), "\(first.gantry.stderr)")
        let before = try await pods(first.admin)

        let load = try LoadGenerator(port: first.port, posts: true, directory: directory)
        #expect(await load.waitForProgress(200))
        let second = try GantryProcess(["up", directory.appendingPathComponent("pods.yaml").path, "--takeover"], directory: directory)
        defer { second.stop() }
        #expect(await second.waitForPort(after: "listener http on http://127.0.0.1:") == first.port, "\(second.stderr)")
        #expect(await second.waitForPort(after: "admin API on http://127.0.0.1:") == first.admin, "\(second.stderr)")
        #expect(await first.gantry.waitForExit() == 0, "\(first.gantry.stderr)")
        #expect(first.gantry.stderr.contains("process \(second.pid) took over"), "\(first.gantry.stderr)")
        // The new gantry alone serves now.
        #expect(await load.waitForProgress(200))
        let result = try await load.stop()
        #expect(result.failureCount == 0, "failed requests: \(result.failures)")
        print("takeover under load: \(result.ok) requests, \(result.failureCount) failed")

        let after = try await pods(first.admin)
        #expect(after.map(\.name).sorted() == before.map(\.name).sorted())
        #expect(Set(after.compactMap(\.pid)) == Set(before.compactMap(\.pid)), "the same processes")
        #expect(after.allSatisfy { $0.ready && $0.restarts == 0 })
        try await stopAndCheckNothingIsLeft(Running(gantry: second, port: first.port, admin: first.admin), pids: Set(after.compactMap(\.pid)))
    }

    /// SIGUSR2 to a running gantry: it starts its successor itself (its own binary, arguments
    /// and `--takeover`), which takes the listener and the pods over; the old one exits 0.
    @Test func sigusr2StartsTheSuccessorThatTakesOver() async throws {
        let first = try await start(replicas: 1)
        defer { first.gantry.stop() }
        #expect(await waitForReady(first.admin, count: 1), "\(first.gantry.stderr)")
        let pod = try #require(try await pods(first.admin).first)
        first.gantry.signal(SIGUSR2)
        #expect(await first.gantry.waitForExit() == 0, "\(first.gantry.stderr)")
        // Both processes write to the same stderr: the successor says who it is.
        let successor = try #require(await first.gantry.waitForPort(after: "gantry: SIGUSR2: started process "), "\(first.gantry.stderr)")
        defer { kill(Int32(successor), SIGKILL) }
        #expect(first.gantry.stderr.contains("took over from process \(first.gantry.pid)"), "\(first.gantry.stderr)")
        let answer = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "http://127.0.0.1:\(first.port)/"])
        #expect(answer.output == "200")
        let after = try await pods(first.admin)
        #expect(after.map(\.pid) == [pod.pid], "the same pod process, served by the successor")
        kill(Int32(successor), SIGTERM)
        #expect(await eventually(timeout: .seconds(30)) { !Self.isRunning(Int32(successor)) })
        let podPID = try #require(pod.pid)
        #expect(await eventually(timeout: .seconds(15)) { !Self.isRunning(podPID) }, "the successor stops the pod it took over")
    }

    /// A new gantry that fails before it serves (here: one of its listeners cannot bind)
    /// changes nothing: the running one keeps its listeners and takes its pods back, probing
    /// and restarting them as before.
    @Test func aTakeoverThatFailsLeavesTheRunningGantryInCharge() async throws {
        let first = try await start(replicas: 2)
        defer { first.gantry.stop() }
        #expect(await waitForReady(first.admin, count: 2), "\(first.gantry.stderr)")

        // A port something else holds.
        let busy = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(busy) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(busy, $0, length) } }
        listen(busy, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(busy, $0, &length) } }
        let busyPort = Int(UInt16(bigEndian: address.sin_port))

        let config = directory.appendingPathComponent("pods.yaml")
        let text = try String(contentsOf: config, encoding: .utf8)
        let failing = directory.appendingPathComponent("failing.yaml")
        try text.replacingOccurrences(
            of: "listeners: [{name: http, port: 0}]", with: "listeners: [{name: http, port: 0}, {name: extra, port: \(busyPort)}]"
        ).write(to: failing, atomically: true, encoding: .utf8)
        // Next to pods.yaml: the same state directory as the running gantry's.
        let second = try GantryProcess(["up", failing.path, "--takeover"], directory: directory)
        defer { second.stop() }
        #expect(await second.waitForExit() == 1)
        #expect(second.stderr.contains("extra"), "\(second.stderr)")

        // Still serving, and supervising again: a killed pod is restarted.
        let answer = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "http://127.0.0.1:\(first.port)/"])
        #expect(answer.output == "200")
        let victim = try #require(try await pods(first.admin).first)
        #expect(kill(try #require(victim.pid), SIGKILL) == 0)
        #expect(await eventually(timeout: .seconds(30)) {
            guard let pod = (try? await pods(first.admin))?.first(where: { $0.name == victim.name }) else { return false }
            return pod.restarts == 1 && pod.ready
        }, "\(first.gantry.stderr)")
        try await stopAndCheckNothingIsLeft(first, pids: Set(try await pods(first.admin).compactMap(\.pid)))
    }

    @Test func takeoverWithNothingRunningSaysSo() async throws {
        let config = directory.appendingPathComponent("alone.yaml")
        try """
        loadBalancer: {listeners: [{name: http, port: 0}]}
        services: [{name: app, endpoints: ["127.0.0.1:1"]}]
        admin: {enabled: false}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path, "--takeover"], directory: directory)
        defer { gantry.stop() }
        #expect(await gantry.waitForExit() == 1)
        #expect(gantry.stderr.contains("no gantry runs on the state directory"), "\(gantry.stderr)")
    }

    /// `gantry up` without a file: the reference scenario with its auth and app pods.
    @Test func theBuiltInExampleLogsInAndServesTheDashboard() async throws {
        let gantry = try GantryProcess(["up"], directory: directory)
        defer { gantry.stop() }
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        #expect(await waitForReady(admin, count: 3), "\(gantry.stderr)")
        let all = try await pods(admin)
        #expect(all.filter { $0.service == "app-service" }.count == 2)
        let auth = try #require(all.first { $0.service == "auth-service" })

        var password = ""
        #expect(
            await eventually {
                let log = (try? String(contentsOfFile: auth.log, encoding: .utf8)) ?? ""
                guard let line = log.split(separator: "\n").first(where: { $0.contains("password=") }) else { return false }
                password = String(line.split(separator: "=").last ?? "")
                return !password.isEmpty
            })

        let login = try await run(
            "curl", ["-s", "-H", "Host: example.com", "-d", #"{"username":"demo","password":"\#(password)"}"#, "http://127.0.0.1:8080/auth/login"])
        let token = try #require(try JSONSerialization.jsonObject(with: Data(login.output.utf8)) as? [String: Any])["access_token"] as? String
        #expect(token?.split(separator: ".").count == 3)
        let wrong = try await run(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "-d", #"{"username":"demo","password":"nope"}"#,
                "http://127.0.0.1:8080/auth/login"])
        #expect(wrong.output == "401")

        let jwks = try await run("curl", ["-s", "-H", "Host: example.com", "http://127.0.0.1:8080/auth/.well-known/jwks.json"])
        #expect(jwks.output.contains(#""kty":"EC""#) && jwks.output.contains(#""alg":"ES256""#))

        // The gateway checks the token and forwards its subject; a client's own X-User-ID never
        // gets through.
        let bearer = "Authorization: Bearer \(token ?? "")"
        var dashboard = try await run(
            "curl", ["-s", "-i", "-H", "Host: example.com", "-H", bearer, "-H", "X-User-ID: admin", "http://127.0.0.1:8080/app/dashboard"])
        if dashboard.output.contains("401") {  // the first key fetch may still be on its way
            _ = await eventually {
                dashboard = (try? await run("curl", ["-s", "-i", "-H", "Host: example.com", "-H", bearer, "http://127.0.0.1:8080/app/dashboard"])) ?? dashboard
                return dashboard.output.contains("200 OK")
            }
        }
        #expect(dashboard.output.contains(#""user":"demo""#), "\(dashboard.output)")
        // The live dashboard, a WebSocket: the handshake meets the same token check.
        let live = try await PythonWebSocket.client("ws://example.com:8080/app/live", mode: "chat", headers: [bearer])
        #expect((live["greeting"] as? [String: Any])?["user"] as? String == "demo", "\(live)")
        #expect((live["echo"] as? [String: Any])?["echo"] as? String == "hello", "\(live)")
        let tokenless = try await PythonWebSocket.client("ws://example.com:8080/app/live")
        #expect(tokenless["status"] as? Int == 401, "\(tokenless)")
        #expect(dashboard.output.lowercased().contains(#"ratelimit-policy: "per-user";q=200;w=2"#), "\(dashboard.output)")
        // Over the per-user limit (100/s, bursts of 200): 429 with the RateLimit headers.
        let burst = try await run(
            "python3",
            [
                "-c",
                """
                import http.client, sys
                c = http.client.HTTPConnection("127.0.0.1", 8080)
                codes = []
                for _ in range(2000):
                    c.request("GET", "/app/dashboard", headers={"Host": "example.com", "Authorization": sys.argv[1]})
                    r = c.getresponse(); r.read(); codes.append(r.status)
                    if r.status == 429:
                        print("429", r.getheader("Retry-After"), r.getheader("RateLimit"))
                        break
                """,
                "Bearer \(token ?? "")",
            ])
        #expect(burst.output.hasPrefix("429 1 \"per-user\";r=0;t="), "\(burst.output)\(burst.error)")

        let anonymous = try await run(
            "curl", ["-s", "-i", "-H", "Host: example.com", "-H", "X-User-ID: demo", "http://127.0.0.1:8080/app/dashboard"])
        #expect(anonymous.output.hasPrefix("HTTP/1.1 401"), "\(anonymous.output)")
        #expect(anonymous.output.lowercased().contains(#"www-authenticate: bearer realm="gantry""#))
        let forged = try await run(
            "curl", ["-s", "-i", "-H", "Host: example.com", "-H", "Authorization: Bearer \(token ?? "")x", "http://127.0.0.1:8080/app/dashboard"])
        #expect(forged.output.hasPrefix("HTTP/1.1 401") && forged.output.contains("invalid_token"), "\(forged.output)")

        // Machines: OAuth 2.0 client credentials, checked by introspection.
        var clientSecret = ""
        #expect(
            await eventually {
                let log = (try? String(contentsOfFile: auth.log, encoding: .utf8)) ?? ""
                guard let line = log.split(separator: "\n").first(where: { $0.contains("client_id=reports") }),
                    let field = line.split(separator: " ").first(where: { $0.hasPrefix("client_secret=") })
                else { return false }
                clientSecret = String(field.dropFirst("client_secret=".count))
                return true
            })
        func clientToken(scope: String) async throws -> String? {
            let answer = try await run(
                "curl", ["-s", "-H", "Host: example.com", "-u", "reports:\(clientSecret)", "-d", "grant_type=client_credentials&scope=\(scope)",
                    "http://127.0.0.1:8080/auth/token"])
            return (try? JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any])?["access_token"] as? String
        }
        let reader = try #require(try await clientToken(scope: "orders:read"))
        let report = try await run("curl", ["-s", "-i", "-H", "Host: example.com", "-H", "Authorization: Bearer \(reader)", "http://127.0.0.1:8080/api/reports"])
        #expect(report.output.hasPrefix("HTTP/1.1 200") && report.output.contains(#""client":"reports""#), "\(report.output)")
        let writer = try #require(try await clientToken(scope: "orders:write"))
        let narrow = try await run("curl", ["-s", "-i", "-H", "Host: example.com", "-H", "Authorization: Bearer \(writer)", "http://127.0.0.1:8080/api/reports"])
        #expect(narrow.output.hasPrefix("HTTP/1.1 403") && narrow.output.contains("insufficient_scope"), "\(narrow.output)")
        let bogus = try await run("curl", ["-s", "-i", "-H", "Host: example.com", "-H", "Authorization: Bearer made-up", "http://127.0.0.1:8080/api/reports"])
        #expect(bogus.output.hasPrefix("HTTP/1.1 401"), "\(bogus.output)")
        let wrongSecret = try await run(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: example.com", "-u", "reports:nope", "-d", "grant_type=client_credentials",
                "http://127.0.0.1:8080/auth/token"])
        #expect(wrongSecret.output == "401")

        // DNS → load balancer → TLS: example.com resolves to the https listener, which serves
        // the same routes over HTTP/2 with a certificate from gantry's local CA.
        let resolved = try await run("dig", ["@127.0.0.1", "-p", "5353", "+short", "example.com"])
        #expect(resolved.output == "127.0.0.1\n", "\(resolved.output)\(resolved.error)")
        let ca = try await run(GantryProcess.binary, ["certs", "ca"], directory: directory)
        let caPath = ca.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(FileManager.default.fileExists(atPath: caPath), "\(ca.output)\(ca.error)")
        let secure = try await run(
            "curl",
            [
                "-s", "--cacert", caPath, "--resolve", "example.com:8443:\(resolved.output.trimmingCharacters(in: .whitespacesAndNewlines))",
                "-w", "\n%{http_version}", "-H", "Authorization: Bearer \(token ?? "")", "https://example.com:8443/app/dashboard",
            ])
        #expect(secure.output.contains(#""user":"demo""#) && secure.output.hasSuffix("\n2"), "\(secure.output)\(secure.error)")

        // East-west: the app-service's cluster IP balances over the same pods.
        let services = try await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/services"])
        let clusterIP = try #require(
            (try JSONSerialization.jsonObject(with: Data(services.output.utf8)) as? [[String: Any]])?
                .first { $0["name"] as? String == "app-service" }?["clusterIP"] as? String)
        let octet = Int(clusterIP.split(separator: ".")[2]) ?? 0
        #expect(clusterIP.hasPrefix("127.0.") && (10...99).contains(octet), "\(clusterIP)")
        let servedBy = try await run("curl", ["-s", "-H", "X-User-ID: demo", "http://\(clusterIP)/app/dashboard"])
        #expect(servedBy.output.contains(#""servedBy":"app-service-"#), "\(servedBy.output)")
        // … and DNS names it as Kubernetes does.
        let clusterName = try await run("dig", ["@127.0.0.1", "-p", "5353", "+short", "app-service.default.svc.cluster.local"])
        #expect(clusterName.output == "\(clusterIP.split(separator: ":")[0])\n", "\(clusterName.output)")
        let srv = try await run("dig", ["@127.0.0.1", "-p", "5353", "+short", "SRV", "_http._tcp.app-service.default.svc.cluster.local"])
        #expect(srv.output == "0 100 \(clusterIP.split(separator: ":").last ?? "") app-service.default.svc.cluster.local.\n", "\(srv.output)")

        // The command line over the admin API.
        let table = try await run(GantryProcess.binary, ["get", "pods", "--admin", "127.0.0.1:\(admin)"])
        #expect(table.output.hasPrefix("NAME "), "\(table.output)\(table.error)")
        #expect(table.output.contains("MEMORY") && table.output.contains("Mi"), "\(table.output)")
        #expect(all.allSatisfy { table.output.contains($0.name) })
        let scaled = try await run(GantryProcess.binary, ["scale", "app-service", "--replicas", "3", "--admin", "127.0.0.1:\(admin)"])
        #expect(scaled.status == 0, "\(scaled.error)")
        #expect(await waitForReady(admin, count: 4))
        let logs = try await run(GantryProcess.binary, ["logs", auth.name, "--admin", "127.0.0.1:\(admin)"])
        #expect(logs.output.contains("auth-service listening on http://\(auth.address)"), "\(logs.output)")
        let unknown = try await run(GantryProcess.binary, ["scale", "nope", "--replicas", "1", "--admin", "127.0.0.1:\(admin)"])
        #expect(unknown.status == 1 && unknown.error.contains("no service named \"nope\""))

        // The README's live change: the example as a file, its per-user limit lowered, the
        // difference shown, then applied to the running example.
        let example = try await run(GantryProcess.binary, ["example", "config"], directory: directory)
        let file = directory.appendingPathComponent("gantry.yaml")
        let lowered = example.output.replacingOccurrences(of: "requests: 100, per: 1s", with: "requests: 20, per: 1s")
        #expect(lowered != example.output)
        try lowered.write(to: file, atomically: true, encoding: .utf8)
        let diff = try await run(GantryProcess.binary, ["diff", file.path, "--admin", "127.0.0.1:\(admin)"], directory: directory)
        #expect(diff.status == 1, "\(diff.output)\(diff.error)")
        let changed = diff.output.split(separator: "\n").filter { $0.hasPrefix("~") || $0.hasPrefix("+") || $0.hasPrefix("-") }
        #expect(changed.first?.hasPrefix("~ policy per-user") == true, "\(diff.output)")
        #expect(!diff.output.contains("service app-service"), "\(diff.output)")
        let apply = try await run(GantryProcess.binary, ["apply", file.path, "--admin", "127.0.0.1:\(admin)"], directory: directory)
        #expect(apply.status == 0, "\(apply.output)\(apply.error)")
        let config = try await run(GantryProcess.binary, ["get", "config", "--admin", "127.0.0.1:\(admin)"], directory: directory)
        let row = config.output.split(separator: "\n").dropFirst().first.map { $0.split(separator: " ").map(String.init) } ?? []
        #expect(row.first == "2" && row.contains("apply") && row.contains(file.path), "\(config.output)")
        let limited = try await run("curl", ["-s", "-i", "-H", "Host: example.com", "-H", bearer, "http://127.0.0.1:8080/app/dashboard"])
        #expect(limited.output.lowercased().contains(#"ratelimit-policy: "per-user";q=200;w=10"#), "\(limited.output)")
        // The policy's verdict on the login's token, and on a forged one, explained; the key set
        // is fetched from the auth-service pods of the running example.
        let checked = try await run(
            GantryProcess.binary, ["jwt", "check", file.path, "--policy", "user-token", "--admin", "127.0.0.1:\(admin)", token ?? ""])
        #expect(checked.status == 0, "\(checked.output)\(checked.error)")
        #expect(checked.output.hasSuffix("accepted by policy user-token\n"), "\(checked.output)")
        let refused = try await run(
            GantryProcess.binary, ["jwt", "check", file.path, "--policy", "user-token", "--admin", "127.0.0.1:\(admin)", (token ?? "") + "x"])
        #expect(refused.status == 1)
        #expect(refused.output.contains("refused by policy user-token"), "\(refused.output)")
        // A file that leaves the replica count as it was keeps the count set by hand.
        #expect(try await pods(admin).filter { $0.service == "app-service" }.count == 3)

        let pids = Set(try await pods(admin).compactMap(\.pid)).union(all.compactMap(\.pid))
        gantry.signal(SIGTERM)
        #expect(await gantry.waitForExit() == 0, "\(gantry.stderr)")
        for pid in pids { #expect(kill(pid, 0) != 0, "pod process \(pid) outlived gantry") }
    }

    /// A pod's children die with it: the whole process group is killed when the pod exits.
    @Test func nothingAPodStartedOutlivesIt() async throws {
        let marker = "\(Int.random(in: 100_000...999_999))"
        let config = directory.appendingPathComponent("group.yaml")
        try """
        admin: {port: 0}
        accessLog: {enabled: false}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway: {routes: [{path: /, service: app}]}
        services:
          - name: app
            clusterIP: None
            pods:
              command: [sh, -c, 'sleep \(marker) & exec "$0" example echo', \(GantryProcess.binary)]
              readinessProbe: {tcpSocket: {}, periodSeconds: 1}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        #expect(await waitForReady(admin, count: 1), "\(gantry.stderr)")
        let first = try #require(try await pods(admin).first?.pid)
        var children: [Int32] = []
        #expect(
            await eventually {
                children = ((try? await run("pgrep", ["-f", "sleep \(marker)"]))?.output ?? "").split(separator: "\n").compactMap { Int32($0) }
                return !children.isEmpty
            })

        #expect(kill(first, SIGKILL) == 0)
        #expect(await eventually { children.allSatisfy { kill($0, 0) != 0 } }, "the pod's child outlived it")
        let restarted = await eventually {
            guard let pod = try? await pods(admin).first else { return false }
            return pod.restarts == 1 && pod.ready && pod.pid != first
        }
        #expect(restarted)

        gantry.signal(SIGTERM)
        #expect(await gantry.waitForExit() == 0)
        #expect(await eventually { (try? await run("pgrep", ["-f", "sleep \(marker)"]))?.status == 1 })
    }

    /// Probe fields as the kubelet reads them: exec readiness gates the endpoints, httpGet sends
    /// its headers, an answer slower than timeoutSeconds is a failure, and failing liveness
    /// restarts the pod after failureThreshold periods.
    @Test func probesGateTrafficAndRestartPods() async throws {
        let marker = directory.appendingPathComponent("ready-\(UUID().uuidString.prefix(8))").path
        let config = directory.appendingPathComponent("probes.yaml")
        try """
        admin: {port: 0}
        accessLog: {enabled: false}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway:
          routes:
            - {path: /gated, service: gated}
            - {path: /slow, service: slow}
            - {path: /sick, service: sick}
        services:
          - name: gated
            clusterIP: None
            pods:
              command: [gantry, example, echo]
              readinessProbe: {exec: {command: [test, -f, \(marker)]}, periodSeconds: 1}
          - name: slow
            clusterIP: None
            pods:
              command: [gantry, example, echo]
              readinessProbe: {httpGet: {path: /healthz, httpHeaders: [{name: X-Echo-Delay, value: 3s}]}, periodSeconds: 1, timeoutSeconds: 1}
          - name: sick
            clusterIP: None
            pods:
              command: [gantry, example, echo]
              restartBackoff: {initial: 1s, max: 2s}
              livenessProbe: {httpGet: {path: /healthz, httpHeaders: [{name: X-Echo-Status, value: "503"}]}, periodSeconds: 1, failureThreshold: 2}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        func status(_ path: String) async -> String {
            (try? await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)\(path)"]))?.output ?? ""
        }

        // Running but not ready: no endpoint, so 503, until the exec probe passes.
        #expect(await eventually { (try? await pods(admin))?.count == 3 })
        let gatedBefore = try await pods(admin).first { $0.service == "gated" }
        #expect(gatedBefore?.ready == false)
        #expect(await status("/gated") == "503")
        _ = FileManager.default.createFile(atPath: marker, contents: nil)
        #expect(await eventually { await status("/gated") == "200" }, "\(gantry.stderr)")

        // The liveness probe sends its header, gets 503, and the pod is restarted.
        #expect(
            await eventually(timeout: .seconds(20)) {
                (try? await pods(admin))?.first { $0.service == "sick" }.map { $0.restarts >= 1 } ?? false
            }, "\(gantry.stderr)")
        // No readiness probe: ready whenever it runs, so traffic flows between restarts.
        #expect(await eventually { await status("/sick") == "200" })

        // Answers slower than timeoutSeconds fail the probe: never ready, though the pod has
        // been answering for several periods (without the delay header it would be ready).
        let slowName = try #require(try await pods(admin).first { $0.service == "slow" }?.name)
        #expect(
            await eventually(timeout: .seconds(20)) {
                let answer = (try? await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/events"]))?.output ?? ""
                let events = (try? JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [[String: Any]]) ?? []
                return events.filter { $0["object"] as? String == "pod/\(slowName)" && $0["reason"] as? String == "Unhealthy" }.count >= 4
            })
        let slow = try await pods(admin).first { $0.service == "slow" }
        #expect(slow?.ready == false && slow?.reason == "Running")
        #expect(await status("/slow") == "503")
        let events = try await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/events"])
        #expect(events.output.contains("LivenessProbeFailed"))
    }
}


extension PodTests {
    /// The example app's live dashboard is a WebSocket: through gantry it sends updates every
    /// second from its pod and echoes what the client sends. When that pod is replaced (a
    /// rollout), the socket stays open through the pod's drain period, then gantry closes it
    /// with 1001 (going away), and a new one lands on the new pod.
    @Test func aWebSocketToADrainedPodIsClosedWith1001() async throws {
        let config = directory.appendingPathComponent("live.yaml")
        let pods = "{command: [gantry, example, app-service], terminationGracePeriodSeconds: 2, readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}}"
        try """
        accessLog: {enabled: false}
        admin: {port: 0}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway: {routes: [{path: /app, service: app}]}
        services: [{name: app, pods: \(pods)}]
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        #expect(await waitForReady(admin, count: 1), "\(gantry.stderr)")
        let first = try #require(try await self.pods(admin).first?.name)

        let chat = try await PythonWebSocket.client("ws://127.0.0.1:\(port)/app/live", mode: "chat")
        #expect((chat["greeting"] as? [String: Any])?["servedBy"] as? String == first, "\(chat)")
        #expect((chat["greeting"] as? [String: Any])?["tick"] as? Int == 1, "\(chat)")
        #expect((chat["echo"] as? [String: Any])?["echo"] as? String == "hello", "\(chat)")

        async let waiting = PythonWebSocket.client("ws://127.0.0.1:\(port)/app/live", mode: "wait")
        #expect(
            await eventually {
                let metrics = (try? await run("curl", ["-s", "http://127.0.0.1:\(admin)/metrics"]))?.output ?? ""
                return metrics.contains("gantry_open_tunnels 1")
            })
        try await post(admin, "/api/services/app/restart")
        let closed = try await waiting
        #expect(closed["closeCode"] as? Int == 1001, "\(closed)")
        // Open through the drain period (2 s, less the half second kept for the pod to stop).
        #expect((closed["seconds"] as? Double ?? 0) >= 1, "\(closed)")
        #expect(await waitForReady(admin, count: 1, excluding: [first]), "\(gantry.stderr)")
        let again = try await PythonWebSocket.client("ws://127.0.0.1:\(port)/app/live")
        let second = (again["greeting"] as? [String: Any])?["servedBy"] as? String
        #expect(second != nil && second != first, "\(again)")
    }
}
