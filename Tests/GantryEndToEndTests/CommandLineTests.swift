import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized) struct CommandLineTests {
    let directory = GantryProcess.scratchDirectory()

    func write(_ name: String, _ text: String) -> String {
        let path = directory.appendingPathComponent(name).path
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    /// A shell that exits at once, leaving a background child with Foundation's exit socket:
    /// Foundation still counts the shell as running, and the tests' helpers must not.
    @Test func aChildsExitIsSeenWhileItsOwnChildLivesOn() async throws {
        let pidFile = directory.appendingPathComponent("sleeper.pid").path
        let shell = ChildProcess()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "sleep 30 & echo $! > \(pidFile); exit 3"]
        try shell.run()
        #expect(await eventually(timeout: .seconds(10)) { shell.hasEnded })
        #expect(shell.endStatus == 3)
        if let sleeper = try? String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), let pid = Int32(sleeper) {
            kill(pid, SIGKILL)
        }
        shell.waitForEnd()
    }

    @Test func versionAndHelp() async throws {
        let version = try await run(GantryProcess.binary, ["--version"])
        #expect(version.status == 0)
        #expect(version.output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
        let help = try await run(GantryProcess.binary, ["--help"])
        #expect(help.status == 0)
        for command in ["up", "validate", "routes", "example"] { #expect(help.output.contains(command)) }
    }

    @Test func validateReportsEveryProblemWithItsPosition() async throws {
        let path = write(
            "bad.yaml",
            """
            loadBalancer:
              listeners: [{name: http, port: 8080}]
            gateway:
              routes:
                - {host: example.com, path: /app, service: app-svc}
                - {host: example.com, path: /auth, pathType: prefix, service: app-service}
            services:
              - name: app-service
                endpoints: [127.0.0.1:9001]
                timeouts: {conect: 1s}
            """)
        let result = try await run(GantryProcess.binary, ["validate", path])
        #expect(result.status == 2)
        let lines = result.error.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(path):5:48: gateway.routes[0].service: unknown service \"app-svc\" (did you mean \"app-service\"?)"))
        #expect(
            lines.contains(
                "\(path):6:50: gateway.routes[1].pathType: unknown value \"prefix\": expected one of Exact, Prefix (did you mean \"Prefix\"?)"))
        #expect(lines.contains("\(path):10:16: services[0].timeouts.conect: unknown key \"conect\" (did you mean \"connect\"?)"))
        #expect(lines.last == "3 problems found")

        let good = write("good.yaml", "loadBalancer: {listeners: [{port: 8080}]}\n")
        let ok = try await run(GantryProcess.binary, ["validate", good])
        #expect(ok.status == 0)
        #expect(ok.output.contains("is valid"))
    }

    /// `gantry jwt check` runs the proxy's verifier on a token: the RFC 7515 A.1 example (HS256,
    /// iss joe, exp 1300819380) with its key in a key-set file.
    @Test func jwtCheckSaysWhetherAPolicyAcceptsATokenAndWhyNot() async throws {
        let keys = write("keys.json", #"{"keys": [{"kty":"oct","kid":"a1","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#)
        let path = write(
            "jwt.yaml",
            """
            loadBalancer: {listeners: [{port: 8080}]}
            gateway:
              policies:
                - name: joe-tokens
                  jwt: {keys: [{jwksFile: \(keys)}], issuer: joe, leeway: 0s}
                - {name: open, cors: {origins: ["*"]}}
              routes: [{path: /, service: app, policies: [joe-tokens]}]
            services: [{name: app, endpoints: [127.0.0.1:9001]}]
            """)
        let token =
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        let accepted = try await run(GantryProcess.binary, ["jwt", "check", path, "--policy", "joe-tokens", "--now", "1300819000", token])
        #expect(accepted.status == 0, "\(accepted.output)\(accepted.error)")
        let lines = accepted.output.split(separator: "\n").map(String.init)
        #expect(lines.contains("ok   alg HS256"), "\(accepted.output)")
        #expect(lines.contains("ok   signature verified by key a1"), "\(accepted.output)")
        #expect(lines.contains("ok   exp 1300819380"), "\(accepted.output)")
        #expect(lines.last == "accepted by policy joe-tokens")

        // Later, the same token has expired: the one failure, named, and exit code 1.
        let expired = try await run(GantryProcess.binary, ["jwt", "check", path, "--policy", "joe-tokens", "--now", "1300819400", "Bearer \(token)"])
        #expect(expired.status == 1)
        #expect(expired.output.contains("FAIL exp 1300819380: the token has expired"), "\(expired.output)")
        #expect(expired.output.split(separator: "\n").last == "refused by policy joe-tokens: the token has expired (the proxy answers 401)")

        // Another spelling of the signature's last character: the same bytes to a lenient
        // decoder, refused here (RFC 7515 §2).
        let respelled = String(token.dropLast()) + "l"
        let malformed = try await run(GantryProcess.binary, ["jwt", "check", path, "--policy", "joe-tokens", "--now", "1300819000", "--json", respelled])
        #expect(malformed.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(malformed.output.utf8)) as? [String: Any])
        #expect(report["accepted"] as? Bool == false)
        #expect(report["error"] as? String == "the token is not a well-formed JWT")

        let wrongKind = try await run(GantryProcess.binary, ["jwt", "check", path, "--policy", "open", token])
        #expect(wrongKind.status == 2 && wrongKind.error.contains("policy \"open\" is a cors policy, not a jwt policy"), "\(wrongKind.error)")
        let typo = try await run(GantryProcess.binary, ["jwt", "check", path, "--policy", "joe-token", token])
        #expect(typo.status == 2 && typo.error.contains("(did you mean \"joe-tokens\"?)"), "\(typo.error)")
    }

    @Test func routesExplainSaysWhereARequestGoesAndWhy() async throws {
        let path = write(
            "routes.yaml",
            """
            loadBalancer: {listeners: [{port: 8080}]}
            gateway:
              routes:
                - {host: example.com, path: /app, service: app}
                - {host: example.com, path: /app/admin, methods: [POST], service: admin}
                - {host: "*.example.com", path: /, service: app}
            services:
              - {name: app, endpoints: [127.0.0.1:9001], loadBalancing: leastRequest}
              - {name: admin, endpoints: [127.0.0.1:9002]}
            """)
        let text = try await run(
            GantryProcess.binary, ["routes", "explain", path, "--host", "Example.com:8443", "--path", "/app/admin/users"])
        #expect(text.status == 0)
        #expect(text.output.contains("matched: routes[0] example.com/app"))
        #expect(text.output.contains("service: app (leastRequest"))
        #expect(text.output.contains("routes[1] host example.com Prefix /app/admin → method does not match"))
        #expect(text.output.contains("routes[2] host *.example.com Prefix / → host does not match"))

        let json = try await run(
            GantryProcess.binary,
            ["routes", "explain", path, "--host", "example.com", "--path", "/app/admin", "--method", "POST", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        let matched = try #require(object["matched"] as? [String: Any])
        #expect(matched["service"] as? String == "admin")
        #expect(matched["route"] as? Int == 1)

        let none = try await run(GantryProcess.binary, ["routes", "explain", path, "--host", "other.org", "--path", "/"])
        #expect(none.status == 1)
        #expect(none.output.contains("matched: nothing, the proxy would answer 404"))
    }

    /// `--query` (or a query in `--path`) meets the routes' query conditions, by Gateway API's
    /// precedence: the route with a query match wins over the one without.
    @Test func routesExplainTakesTheQuery() async throws {
        let path = write(
            "query.yaml",
            """
            loadBalancer: {listeners: [{port: 8080}]}
            gateway:
              routes:
                - {host: example.com, path: /, service: v1}
                - {host: example.com, path: /, queryParams: [{name: version, value: "2"}], service: v2}
            services:
              - {name: v1, endpoints: [127.0.0.1:9001]}
              - {name: v2, endpoints: [127.0.0.1:9002]}
            """)
        func service(_ arguments: [String]) async throws -> String? {
            let json = try await run(GantryProcess.binary, ["routes", "explain", path, "--host", "example.com", "--json"] + arguments)
            let object = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
            return (object?["matched"] as? [String: Any])?["service"] as? String
        }
        #expect(try await service(["--path", "/", "--query", "version=2"]) == "v2")
        #expect(try await service(["--path", "/?debug=1", "--query", "version=2"]) == "v2")
        #expect(try await service(["--path", "/?version=2"]) == "v2")
        #expect(try await service(["--path", "/", "--query", "version=3"]) == "v1")
        let text = try await run(GantryProcess.binary, ["routes", "explain", path, "--host", "example.com", "--path", "/", "--query", "Version=2"])
        #expect(text.output.contains("matched: routes[0]"), "names are case-sensitive: \(text.output)")
        #expect(text.output.contains("routes[1] host example.com Prefix / → query condition"), "\(text.output)")
    }
}

extension CommandLineTests {
    @Test func autoscalerSimulateDecidesLikeTheLiveLoop() async throws {
        let directory = GantryProcess.scratchDirectory()
        let input = directory.appendingPathComponent("moment.json")
        try """
        {"currentReplicas": 2, "minReplicas": 2, "maxReplicas": 10, "now": 100,
         "targets": [{"averageValue": {"metric": "requestsPerSecond", "value": 50}}],
         "pods": [{"name": "a", "ready": true, "started": 0, "samples": {"requestsPerSecond": 400}},
                  {"name": "b", "ready": true, "started": 0, "samples": {"requestsPerSecond": 424}}]}
        """.write(to: input, atomically: true, encoding: .utf8)
        let result = try await run(GantryProcess.binary, ["autoscaler", "simulate", input.path])
        #expect(result.status == 0, "\(result.error)")
        let decision = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(decision["desiredReplicas"] as? Int == 6)
        #expect(decision["recommendedReplicas"] as? Int == 17)
        #expect(decision["limits"] as? [String] == ["ScaleUpLimit"])
        #expect(decision["reason"] as? String == "requestsPerSecond 412/50 per pod")

        // Readiness times and sample times, a failed pod, and an External metric's value: the
        // decision says how it grouped the pods.
        try """
        {"currentReplicas": 4, "maxReplicas": 10, "now": 1000,
         "targets": [{"cpuUtilization": {"percent": 50}}, {"external": {"metric": "jobs_waiting", "target": {"averageValue": 10}}}],
         "metricValues": {"jobs_waiting": 35},
         "pods": [{"name": "a", "ready": true, "started": 0, "cpuRequest": 100, "samples": {"cpu": 40}},
                  {"name": "b", "ready": true, "started": 900, "readyTransition": 950, "sampleTime": 990, "sampleWindow": 60,
                   "cpuRequest": 100, "samples": {"cpu": 200}},
                  {"name": "c", "ready": false, "started": 0, "readyTransition": 5, "cpuRequest": 100, "samples": {"cpu": 300}},
                  {"name": "d", "ready": false, "started": 0, "failed": true, "cpuRequest": 100, "samples": {}}]}
        """.write(to: input, atomically: true, encoding: .utf8)
        let grouped = try await run(GantryProcess.binary, ["autoscaler", "simulate", input.path])
        #expect(grouped.status == 0, "\(grouped.error)")
        let moment = try #require(try JSONSerialization.jsonObject(with: Data(grouped.output.utf8)) as? [String: Any])
        let proposals = try #require(moment["proposals"] as? [[String: Any]])
        #expect(proposals[0]["ready"] as? [String] == ["a"])
        #expect(proposals[0]["unready"] as? [String] == ["b", "c"])  // b's sample predates a window of readiness; c never became ready
        #expect(proposals[0]["ignored"] as? [String] == ["d"])
        #expect(proposals[0]["missing"] as? [String] == [])
        #expect(proposals[1]["replicas"] as? Int == 4 && proposals[1]["note"] as? String == "per replica")

        try "{\"pods\": []}".write(to: input, atomically: true, encoding: .utf8)
        let bad = try await run(GantryProcess.binary, ["autoscaler", "simulate", input.path])
        #expect(bad.status == 2)
        #expect(bad.error.contains("not an autoscaler input"))
    }
}

extension CommandLineTests {
    @Test func loadSendsPacedRequestsAndSummarises() async throws {
        let directory = GantryProcess.scratchDirectory()
        let echo = try GantryProcess(["example", "echo", "--port", "0"], directory: directory)
        defer { echo.stop() }
        let port = try #require(await echo.waitForPort(after: "echo listening on http://127.0.0.1:", in: \.stdout))
        let result = try await run(
            GantryProcess.binary,
            ["load", "http://127.0.0.1:\(port)/x", "--rps", "40", "--connections", "2", "--duration", "2s", "--header", "X-Echo-Status: 202"])
        #expect(result.status == 0, "\(result.error)")
        let summary = try #require(result.output.split(separator: "\n").last { $0.hasPrefix("total:") }, "\(result.output)")
        let requests = Int(summary.split(separator: " ").drop { $0 != "requests" }.dropFirst().first ?? "") ?? 0
        #expect(requests > 0 && requests <= 82, "\(summary)")  // paced: at most 40/s for 2 s, plus one per connection
        #expect(summary.contains("202:\(requests)") && summary.hasSuffix("errors:0"), "\(summary)")
        #expect(result.error.contains("1s  "))  // a progress line every second
        #expect(echo.process.isRunning)
    }
}
