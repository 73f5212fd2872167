import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A running gantry changed while it serves: routes, policies, pods, services and listeners,
/// by the file changing on disk, SIGHUP and `gantry apply`, with real clients under load and
/// not one failed request.
@Suite(.serialized) struct LiveConfigTests {
    let directory = GantryProcess.scratchDirectory()

    struct Running {
        let gantry: GantryProcess
        let file: URL
        let ports: [String: Int]
        let admin: Int
    }

    /// A file with an `echo` service behind every listener's routes; `extra` goes under `gateway:`.
    static func config(
        listeners: [String] = ["http"], gateway: String = "  routes: [{name: app, path: /, service: echo}]", services: String = "",
        replicas: Int = 2, env: String = "base"
    ) -> String {
        """
        runtime: {shutdownGracePeriod: 10s}
        accessLog: {enabled: false}
        admin: {port: 0}
        loadBalancer:
          listeners: [\(listeners.map { "{name: \($0), port: 0}" }.joined(separator: ", "))]
        gateway:
        \(gateway)
        services:
          - name: echo
            clusterIP: None
            pods:
              command: [gantry, example, echo]
              env: [{name: VERSION, value: \(env)}]
              replicas: \(replicas)
              terminationGracePeriodSeconds: 10
              readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}
        \(services)
        """
    }

    func start(_ text: String, name: String = "live.yaml", listeners: [String] = ["http"], watch: Bool = true, pods: Bool = true) async throws
        -> Running
    {
        let file = directory.appendingPathComponent(name)
        try text.write(to: file, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", file.path] + (watch ? [] : ["--no-watch"]), directory: directory)
        var ports: [String: Int] = [:]
        for listener in listeners {
            ports[listener] = try #require(await gantry.waitForPort(after: "listener \(listener) on http://127.0.0.1:"), "\(gantry.stderr)")
        }
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        let running = Running(gantry: gantry, file: file, ports: ports, admin: admin)
        if pods { #expect(await eventually(timeout: .seconds(60)) { (try? await self.readyPods(running)) ?? 0 >= 1 }, "\(gantry.stderr)") }
        return running
    }

    func config(_ running: Running) async throws -> [String: Any] {
        let answer = try await run("curl", ["-sf", "http://127.0.0.1:\(running.admin)/api/config"])
        return try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [String: Any] ?? [:]
    }

    func generation(_ running: Running) async -> Int {
        (try? await config(running))?["generation"] as? Int ?? 0
    }

    func pods(_ running: Running) async throws -> [[String: Any]] {
        let answer = try await run("curl", ["-sf", "http://127.0.0.1:\(running.admin)/api/pods"])
        return try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [[String: Any]] ?? []
    }

    func readyPods(_ running: Running, service: String = "echo") async throws -> Int {
        try await pods(running).filter { $0["service"] as? String == service && $0["ready"] as? Bool == true }.count
    }

    func gantryCommand(_ arguments: [String], admin: Int) async throws -> (status: Int32, output: String, error: String) {
        let result = try await run(GantryProcess.binary, arguments + ["--admin", "127.0.0.1:\(admin)"], directory: directory)
        return (result.status, result.output, result.error)
    }

    func stop(_ running: Running) async {
        running.gantry.signal(SIGTERM)
        #expect(await running.gantry.waitForExit() == 0, "\(running.gantry.stderr)")
    }

    // MARK: Routes and policies, 20 times a second

    /// Routes and policies replaced 20 times a second for 10 s through the admin API, while
    /// keep-alive clients send requests: every response carries the version of a route set that
    /// was current while its request was in gantry (installed before it ended, not yet replaced
    /// when it began), versions never go back on a connection, and no request fails.
    @Test func routesAndPoliciesReplacedTwentyTimesASecondDropNothing() async throws {
        func version(_ number: Int) -> String {
            Self.config(
                gateway: """
                      policies:
                        - {name: stamp-\(number), transform: {responseHeaders: {add: [{name: X-Route-Version, value: "\(number)"}]}}}
                      routes:
                        - {name: route-\(number), path: /, service: echo, policies: [stamp-\(number)]}
                    """)
        }
        let running = try await start(version(1))
        let configs = directory.appendingPathComponent("versions.json")
        try JSONSerialization.data(withJSONObject: (1...200).map { version($0) }).write(to: configs)
        let script = directory.appendingPathComponent("reloads.py")
        try Self.reloadScript.write(to: script, atomically: true, encoding: .utf8)
        let result = try await run(
            "python3", [script.path, "\(running.ports["http"]!)", "\(running.admin)", running.file.path, configs.path], timeout: .seconds(120))
        let summary = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any] ?? [:]
        #expect(summary["applied"] as? Int == 199, "\(result.output) \(result.error)")
        #expect(summary["failures"] as? [String] == [], "\(summary)")
        #expect(summary["violations"] as? [String] == [], "\(summary)")
        #expect((summary["requests"] as? Int ?? 0) > 0)
        #expect((summary["versionsSeen"] as? Int ?? 0) >= 2, "\(summary)")
        #expect(await generation(running) == 200)
        await stop(running)
    }

    /// Keep-alive GETs from four threads, and 199 configurations applied 20 times a second;
    /// then every response checked against when each configuration was applied.
    static let reloadScript = #"""
        import http.client, json, sys, threading, time
        port, admin, path, configs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], json.load(open(sys.argv[4]))
        done = threading.Event()
        lock = threading.Lock()
        records, failures, applies = [], [], {}

        def load(worker):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            while not done.is_set():
                start = time.monotonic()
                try:
                    connection.request("GET", "/", headers={"Host": "example.com"})
                    response = connection.getresponse()
                    response.read()
                    end = time.monotonic()
                    with lock:
                        if response.status != 200:
                            failures.append("status %d" % response.status)
                        else:
                            records.append((worker, start, end, int(response.getheader("X-Route-Version") or 0)))
                except Exception as error:
                    with lock:
                        failures.append("%s: %s" % (type(error).__name__, error))
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)

        threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        applied = 0
        for number, text in enumerate(configs[1:], start=2):
            begun = time.monotonic()
            admin_connection = http.client.HTTPConnection("127.0.0.1", admin, timeout=30)
            admin_connection.request("POST", "/api/config", body=json.dumps({"path": path, "text": text, "dryRun": False}))
            answer = json.loads(admin_connection.getresponse().read())
            applies[number] = (begun, time.monotonic())
            if answer.get("result") == "applied":
                applied += 1
            else:
                failures.append("apply %d: %s" % (number, answer))
            time.sleep(max(0, 0.05 - (time.monotonic() - begun)))
        time.sleep(0.5)
        done.set()
        for thread in threads:
            thread.join()

        applies[1] = (0, 0)
        violations, last = [], {}
        for worker, start, end, version in records:
            installed = applies.get(version)
            replaced = applies.get(version + 1)
            if installed is None or installed[0] > end:
                violations.append("version %d answered a request that ended before it was applied" % version)
            elif replaced is not None and replaced[1] < start:
                violations.append("version %d answered a request that began after version %d was in place" % (version, version + 1))
            if version < last.get(worker, 0):
                violations.append("a connection went back from version %d to %d" % (last[worker], version))
            last[worker] = version
        print(json.dumps({"applied": applied, "requests": len(records), "failures": failures[:20], "violations": violations[:20],
                          "versionsSeen": len(set(r[3] for r in records))}))
        """#

    // MARK: Pods

    /// A changed pod template under load: every pod is replaced, new before old, and no
    /// request fails (half of them POSTs, which gantry may not retry once sent).
    @Test func aPodTemplateChangeReplacesEveryPodUnderLoad() async throws {
        let running = try await start(Self.config())
        #expect(await eventually(timeout: .seconds(60)) { (try? await readyPods(running)) == 2 })
        let old = Set(try await pods(running).compactMap { $0["name"] as? String })
        let load = try LoadGenerator(port: running.ports["http"]!, path: "/", threads: 4, posts: true, directory: directory)
        #expect(await load.waitForProgress(50))
        try Self.config(env: "changed").write(to: running.file, atomically: true, encoding: .utf8)
        #expect(
            await eventually(timeout: .seconds(90)) {
                guard let all = try? await pods(running) else { return false }
                let names = Set(all.compactMap { $0["name"] as? String })
                return all.count == 2 && names.isDisjoint(with: old) && all.allSatisfy { $0["ready"] as? Bool == true }
            }, "\(running.gantry.stderr)")
        #expect(await load.waitForProgress(50))
        let result = try await load.stop()
        #expect(result.failureCount == 0, "\(result.failures)")
        #expect(result.ok > 100)
        let events = try await run("curl", ["-sf", "http://127.0.0.1:\(running.admin)/api/events"]).output
        #expect(events.contains("TemplateChanged") && events.contains("RolloutComplete"))
        await stop(running)
    }

    /// A service removed while a slow request to it is in flight: that request completes, then
    /// the service's pod stops; requests to the routes left go on.
    @Test func aRemovedServiceFinishesItsRequestInFlight() async throws {
        let slow = """
              - name: slow
                clusterIP: None
                pods:
                  command: [gantry, example, echo]
                  terminationGracePeriodSeconds: 30
                  readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}
            """
        let both = "  routes: [{name: app, path: /, service: echo}, {name: slow, path: /slow, service: slow}]"
        let running = try await start(Self.config(gateway: both, services: slow))
        #expect(await eventually(timeout: .seconds(60)) { (try? await readyPods(running, service: "slow")) == 1 })
        let port = running.ports["http"]!
        let request = Task {
            try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-Echo-Delay: 3s", "http://127.0.0.1:\(port)/slow"])
        }
        #expect(
            await eventually {
                (try? await pods(running))?.contains { $0["service"] as? String == "slow" && ($0["inFlight"] as? Int ?? 0) > 0 } == true
            })
        try Self.config().write(to: running.file, atomically: true, encoding: .utf8)
        #expect(await eventually { await generation(running) == 2 })
        #expect(try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/slow"]).output == "200")  // now the echo route's
        #expect(try await request.value.output == "200")
        #expect(await eventually(timeout: .seconds(30)) { (try? await pods(running))?.contains { $0["service"] as? String == "slow" } == false })
        await stop(running)
    }

    // MARK: Policies' state, bad files, listeners

    /// A client over its rate limit stays limited across a change that leaves the limit's policy
    /// as it was; a change to the policy starts it afresh. Applied with `gantry apply`, which
    /// prints what changed.
    @Test func aRateLimitedClientStaysLimitedAcrossAnUnrelatedChange() async throws {
        func limited(_ requests: Int, extraRoute: Bool) -> String {
            Self.config(
                gateway: """
                      policies: [{name: limit, rateLimit: {requests: \(requests), per: 1h}}]
                      routes:
                        - {name: app, path: /, service: echo, policies: [limit]}
                    \(extraRoute ? "    - {name: more, path: /more, service: echo}" : "")
                    """)
        }
        let running = try await start(limited(3, extraRoute: false), watch: false)
        let url = "http://127.0.0.1:\(running.ports["http"]!)/"
        func status() async throws -> String { try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", url]).output }
        for _ in 0..<3 { #expect(try await status() == "200") }
        #expect(try await status() == "429")

        let unrelated = directory.appendingPathComponent("unrelated.yaml")
        try limited(3, extraRoute: true).write(to: unrelated, atomically: true, encoding: .utf8)
        let applied = try await gantryCommand(["apply", unrelated.path], admin: running.admin)
        #expect(applied.status == 0, "\(applied.error)")
        #expect(applied.output.contains("+ route more added"), "\(applied.output)")
        #expect(!applied.output.contains("policy limit"))
        #expect(try await status() == "429")

        let changed = directory.appendingPathComponent("changed.yaml")
        try limited(5, extraRoute: true).write(to: changed, atomically: true, encoding: .utf8)
        let diff = try await gantryCommand(["diff", changed.path], admin: running.admin)
        #expect(diff.status == 1)
        #expect(diff.output.contains("~ policy limit changed: its state starts afresh"), "\(diff.output)")
        #expect(diff.output.contains("rateLimit.requests: 3 → 5"))
        #expect(await generation(running) == 2)  // a diff changes nothing
        #expect(try await gantryCommand(["apply", changed.path], admin: running.admin).status == 0)
        #expect(try await status() == "200")
        await stop(running)
    }

    /// A file with a problem changes nothing, whichever way it arrives: the problem is reported
    /// with file and line in gantry's log, as a ConfigRejected event, in `gantry get config` and
    /// as `gantry apply`'s output with exit code 2; traffic goes on throughout.
    @Test func aBrokenFileChangesNothingAndSaysWhy() async throws {
        let running = try await start(Self.config())
        let load = try LoadGenerator(port: running.ports["http"]!, path: "/", threads: 2, directory: directory)
        #expect(await load.waitForProgress(20))
        let broken = Self.config().replacingOccurrences(of: "service: echo}", with: "service: ecko}")
        try broken.write(to: running.file, atomically: true, encoding: .utf8)
        // What `gantry validate` says of the file, word for word.
        let validate = try await run(GantryProcess.binary, ["validate", running.file.path], directory: directory)
        #expect(validate.status == 2)
        let issue = try #require(validate.error.split(separator: "\n").first.map(String.init))
        #expect(issue.hasPrefix("\(running.file.path):7:") && issue.hasSuffix(#"gateway.routes[0].service: unknown service "ecko" (did you mean "echo"?)"#))
        #expect(await eventually { running.gantry.stderr.contains(issue) }, "\(running.gantry.stderr)")
        let status = try await config(running)
        #expect(status["generation"] as? Int == 1)
        #expect((status["lastRejection"] as? [String: Any])?["issues"] as? [String] == [issue])
        let events = try await run("curl", ["-sf", "http://127.0.0.1:\(running.admin)/api/events"]).output
        #expect(events.contains("ConfigRejected"))

        let apply = try await gantryCommand(["apply", running.file.path], admin: running.admin)
        #expect(apply.status == 2)
        #expect(apply.error.contains(issue) && apply.error.contains("1 problem found"), "\(apply.error)")

        #expect(await load.waitForProgress(20))
        let result = try await load.stop()
        #expect(result.failureCount == 0, "\(result.failures)")
        await stop(running)
    }

    /// A listener added and another removed while clients load a third: the third drops
    /// nothing, the new one answers, the removed one refuses connections. Applied on SIGHUP.
    @Test func listenersComeAndGoUnderLoadOnAnother() async throws {
        let running = try await start(Self.config(listeners: ["main", "old"]), listeners: ["main", "old"], watch: false)
        let load = try LoadGenerator(port: running.ports["main"]!, path: "/", threads: 4, directory: directory)
        #expect(await load.waitForProgress(50))
        try Self.config(listeners: ["main", "new"]).write(to: running.file, atomically: true, encoding: .utf8)
        running.gantry.signal(SIGHUP)
        let newPort = try #require(await running.gantry.waitForPort(after: "listener new on http://127.0.0.1:"), "\(running.gantry.stderr)")
        #expect((try await config(running))["trigger"] as? String == "signal")
        #expect(try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(newPort)/"]).output == "200")
        let old = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(running.ports["old"]!)/"])
        #expect(old.output == "000")
        #expect(await load.waitForProgress(50))
        let result = try await load.stop()
        #expect(result.failureCount == 0, "\(result.failures)")
        await stop(running)
    }

    /// Editors' ways of saving a file: written in place in two steps (the first leaving it
    /// broken for a moment), and written beside it and renamed over it. Each save is applied
    /// once, whole; the moment of breakage is never read.
    @Test func editorsWritePatternsAreAppliedOnceEach() async throws {
        let running = try await start(Self.config())
        let whole = Self.config(replicas: 3)
        let handle = try FileHandle(forWritingTo: running.file)
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(whole.prefix(40).utf8))
        try handle.write(contentsOf: Data(whole.dropFirst(40).utf8))
        try handle.close()
        #expect(await eventually { await generation(running) == 2 })
        let temporary = directory.appendingPathComponent(".live.yaml.swp")
        try Self.config(replicas: 1).write(to: temporary, atomically: false, encoding: .utf8)
        #expect(rename(temporary.path, running.file.path) == 0)
        #expect(await eventually { await generation(running) == 3 })
        let status = try await config(running)
        #expect((status["reloads"] as? [String: Int])?["rejected"] ?? 0 == 0)
        #expect(status["trigger"] as? String == "file")
        #expect(await eventually(timeout: .seconds(30)) { (try? await pods(running))?.count == 1 })
        await stop(running)
    }

    /// A service moved from a static endpoint to pods and back while clients load it: its
    /// endpoints are never empty on the way (the pods take over once ready, the static one once
    /// it is back), and no request fails.
    @Test func aServiceMovesBetweenAStaticEndpointAndPodsUnderLoad() async throws {
        let outside = try GantryProcess(["example", "echo", "--port", "0", "--name", "outside"], directory: directory)
        defer { outside.stop() }
        let port = try #require(await outside.waitForPort(after: "echo listening on http://127.0.0.1:", in: \.stdout))
        let podless = Self.config().replacingOccurrences(
            of: Self.config().components(separatedBy: "services:\n")[1], with: "  - {name: echo, clusterIP: None, endpoints: [127.0.0.1:\(port)]}\n")
        let running = try await start(podless, watch: false, pods: false)
        func server() async throws -> String {
            try await run("curl", ["-s", "-o", "/dev/null", "-w", "%header{x-echo-server}", "http://127.0.0.1:\(running.ports["http"]!)/"]).output
        }
        #expect(try await server() == "outside")
        let load = try LoadGenerator(port: running.ports["http"]!, path: "/", threads: 4, directory: directory)
        #expect(await load.waitForProgress(50))

        let withPods = directory.appendingPathComponent("pods.yaml")
        try Self.config().write(to: withPods, atomically: true, encoding: .utf8)
        #expect(try await gantryCommand(["apply", withPods.path], admin: running.admin).status == 0)
        #expect(try await readyPods(running) >= 1)
        #expect(try await server().hasPrefix("echo-"))
        #expect(await load.waitForProgress(50))

        #expect(try await gantryCommand(["apply", running.file.path], admin: running.admin).status == 0)
        #expect(try await server() == "outside")
        #expect(await eventually(timeout: .seconds(30)) { (try? await pods(running))?.isEmpty == true })
        #expect(await load.waitForProgress(50))
        let result = try await load.stop()
        #expect(result.failureCount == 0, "\(result.failures)")
        await stop(running)
    }

    /// A service whose pods have run to completion (restartPolicy Never), then removed: its
    /// pods go with it, as a Job's do when the Job is deleted.
    @Test func aRemovedServiceTakesItsCompletedPodsWithIt() async throws {
        let job = "  - name: job\n    clusterIP: None\n    pods: {command: [sh, -c, 'exit 0'], restartPolicy: Never, replicas: 2}\n"
        try Self.config().write(to: directory.appendingPathComponent("plain.yaml"), atomically: true, encoding: .utf8)
        let running = try await start(Self.config(services: job), watch: false)
        func jobPods() async -> [[String: Any]] { ((try? await pods(running)) ?? []).filter { $0["service"] as? String == "job" } }
        let completed = await eventually(timeout: .seconds(30)) {
            let pods = await jobPods()
            return pods.count == 2 && pods.allSatisfy { $0["phase"] as? String == "Succeeded" }
        }
        #expect(completed)
        #expect(try await gantryCommand(["apply", running.file.path.replacingOccurrences(of: "live.yaml", with: "plain.yaml")], admin: running.admin).status == 0)
        #expect(await eventually(timeout: .seconds(30)) { await jobPods().isEmpty })
        await stop(running)
    }

    // MARK: DNS and the access log

    /// A DNS record and the access log's destination changed in the file: new answers come
    /// from the new zone, and the next requests' lines go to the new file.
    @Test func zonesAndTheAccessLogChangeLive() async throws {
        let first = directory.appendingPathComponent("access-1.log").path
        let second = directory.appendingPathComponent("access-2.log").path
        func file(address: String, log: String) -> String {
            Self.config()
                .replacingOccurrences(of: "accessLog: {enabled: false}", with: "accessLog: {path: \(log)}")
                .replacingOccurrences(
                    of: "admin: {port: 0}",
                    with: "admin: {port: 0}\ndns:\n  listen: 127.0.0.1:0\n  zones: [{origin: example.com, records: [{type: A, address: \(address)}]}]")
        }
        let running = try await start(file(address: "127.0.0.7", log: first))
        let dnsPort = try #require(await running.gantry.waitForPort(after: "DNS on 127.0.0.1:"), "\(running.gantry.stderr)")
        func resolve() async throws -> String {
            try await run("dig", ["@127.0.0.1", "-p", "\(dnsPort)", "+short", "example.com"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let url = "http://127.0.0.1:\(running.ports["http"]!)/first"
        #expect(try await resolve() == "127.0.0.7")
        _ = try await run("curl", ["-s", "-o", "/dev/null", url])
        #expect(await eventually { ((try? String(contentsOfFile: first, encoding: .utf8)) ?? "").contains("\"path\":\"/first\"") })

        try file(address: "127.0.0.8", log: second).write(to: running.file, atomically: true, encoding: .utf8)
        #expect(await eventually { await generation(running) == 2 }, "\(running.gantry.stderr)")
        #expect(try await resolve() == "127.0.0.8")
        _ = try await run("curl", ["-s", "-o", "/dev/null", url.replacingOccurrences(of: "/first", with: "/second")])
        #expect(await eventually { ((try? String(contentsOfFile: second, encoding: .utf8)) ?? "").contains("\"path\":\"/second\"") })
        #expect(!(((try? String(contentsOfFile: first, encoding: .utf8)) ?? "").contains("/second")))

        // A destination that cannot be opened rejects the whole change, found before anything
        // changed: the listener and the zone that came with it are not there.
        let unopenable = directory.appendingPathComponent("missing/access.log").path
        let rejected = directory.appendingPathComponent("rejected.yaml")
        try file(address: "127.0.0.9", log: unopenable)
            .replacingOccurrences(of: "listeners: [{name: http, port: 0}]", with: "listeners: [{name: http, port: 0}, {name: extra, port: 0}]")
            .write(to: rejected, atomically: true, encoding: .utf8)
        let apply = try await gantryCommand(["apply", rejected.path], admin: running.admin)
        #expect(apply.status == 2 && apply.error.contains(unopenable), "\(apply.error)")
        #expect(await generation(running) == 2)
        #expect(try await resolve() == "127.0.0.8")
        #expect(!running.gantry.stderr.contains("listener extra"))
        await stop(running)
    }

    // MARK: A canary, as the README shows it

    /// A route split between app-v1 and app-v2 by weight: 100/0, then 50/50 with callers kept on
    /// one version by a header, then 0/100, each by `gantry apply`; every request answered, each
    /// by the version its weights allow.
    @Test func aCanaryGoesFromNoneToAllOfTheTraffic() async throws {
        func canary(v1: Int, v2: Int, sticky: Bool = false) -> String {
            let pod = "pods: {command: [gantry, example, echo], replicas: 1, readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}}"
            return """
                runtime: {shutdownGracePeriod: 10s}
                accessLog: {enabled: false}
                admin: {port: 0}
                loadBalancer: {listeners: [{name: http, port: 0}]}
                gateway:
                  routes:
                    - path: /
                      backends: [{service: app-v1, weight: \(v1)}, {service: app-v2, weight: \(v2)}]
                \(sticky ? "      sticky: {header: X-User}" : "")
                services:
                  - {name: app-v1, clusterIP: None, \(pod)}
                  - {name: app-v2, clusterIP: None, \(pod)}
                """
        }
        let running = try await start(canary(v1: 100, v2: 0), name: "canary.yaml", pods: false)
        let bothReady = await eventually(timeout: .seconds(60)) {
            let v1 = (try? await self.readyPods(running, service: "app-v1")) ?? 0
            let v2 = (try? await self.readyPods(running, service: "app-v2")) ?? 0
            return v1 == 1 && v2 == 1
        }
        #expect(bothReady, "\(running.gantry.stderr)")
        let connection = try RawHTTPConnection(port: running.ports["http"]!)
        func versions(_ count: Int, user: String? = nil) async throws -> [String: Int] {
            var seen: [String: Int] = [:]
            for _ in 0..<count {
                let lines = ["GET /work HTTP/1.1", "Host: example.com"] + (user.map { ["X-User: \($0)"] } ?? [])
                try connection.send(lines.joined(separator: "\r\n") + "\r\n\r\n")
                let response = try await connection.readResponse()
                #expect(response.status == 200)
                let server = try response.json()["server"] as? String ?? "?"
                seen[server.hasPrefix("app-v2") ? "v2" : server.hasPrefix("app-v1") ? "v1" : server, default: 0] += 1
            }
            return seen
        }
        func apply(_ text: String) async throws {
            try text.write(to: running.file, atomically: true, encoding: .utf8)
            let applied = try await gantryCommand(["apply", running.file.path], admin: running.admin)
            #expect(applied.status == 0, "\(applied.output)\(applied.error)")
        }
        #expect(try await versions(50) == ["v1": 50])

        try await apply(canary(v1: 50, v2: 50))
        let even = try await versions(300)
        #expect(even.keys.sorted() == ["v1", "v2"] && (100...200).contains(even["v1"] ?? 0), "\(even)")

        try await apply(canary(v1: 50, v2: 50, sticky: true))
        var placed: Set<String> = []
        for user in ["ada", "bob", "cy", "dee", "eve", "fay", "gus", "hal"] {
            let seen = try await versions(10, user: user)
            #expect(seen.count == 1, "\(user) moved between versions: \(seen)")
            placed.formUnion(seen.keys)
        }
        #expect(placed == ["v1", "v2"], "eight users all on one version")

        try await apply(canary(v1: 0, v2: 100))
        #expect(try await versions(50) == ["v2": 50])
        await stop(running)
    }
}
