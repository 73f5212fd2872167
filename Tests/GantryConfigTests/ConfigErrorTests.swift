import Foundation
import GantryCore
import Testing

@testable import GantryConfig

private func issues(_ yaml: String) -> [String] {
    switch ConfigLoader.load(yaml: yaml, file: "gantry.yaml", coreCount: 2) {
    case .success: return []
    case .failure(let error): return error.issues.map(\.description)
    }
}

@Suite struct ConfigErrorTests {
    static let valid = """
        loadBalancer:
          listeners:
            - {name: http, port: 8080}
        gateway:
          routes:
            - {host: example.com, path: /app, service: app-service}
        services:
          - name: app-service
            endpoints: [127.0.0.1:9001, 127.0.0.1:9002]
        """

    @Test func validFileCompiles() throws {
        let loaded = try ConfigLoader.load(yaml: Self.valid, file: "gantry.yaml", coreCount: 2).get()
        #expect(loaded.snapshot.workers == 2)
        #expect(loaded.snapshot.listeners == [ListenerSettings(name: "http", address: "127.0.0.1", port: 8080, scheme: "http")])
        #expect(loaded.snapshot.routes.rules.count == 1)
        #expect(loaded.snapshot.routes.rules[0].name == "example.com/app")
        #expect(loaded.snapshot.services[0].staticEndpoints.map(\.description) == ["127.0.0.1:9001", "127.0.0.1:9002"])
        #expect(loaded.snapshot.services[0].connectTimeout == .seconds(2))
        #expect(loaded.snapshot.routeSettings[0].responseTimeout == .seconds(15))
    }

    @Test func everyProblemIsReportedWithLineAndPath() {
        let yaml = """
            loadBalancer:
              listeners:
                - {name: http, port: 8080, adress: 0.0.0.0}
            gateway:
              routes:
                - {host: example.com, path: /app, pathType: Prefx, service: app-svc}
                - {host: example.com, path: auth, service: app-service}
                - {host: example.com, path: /x, service: app-service, timeout: 5}
            services:
              - name: app-service
                endpoints: [127.0.0.1:9001, "nope"]
                loadBalancing: leastRequests
                timeouts: {connect: 10 s}
            """
        let found = issues(yaml)
        #expect(
            found == [
                #"gantry.yaml:3:32: loadBalancer.listeners[0].adress: unknown key "adress" (did you mean "address"?)"#,
                #"gantry.yaml:6:49: gateway.routes[0].pathType: unknown value "Prefx": expected one of Exact, Prefix (did you mean "Prefix"?)"#,
                #"gantry.yaml:6:65: gateway.routes[0].service: unknown service "app-svc" (did you mean "app-service"?)"#,
                #"gantry.yaml:7:33: gateway.routes[1].path: "auth" is not a path: it must start with / and have no query, fragment or spaces (or be * for OPTIONS *)"#,
                #"gantry.yaml:8:68: gateway.routes[2].timeout: invalid duration "5": write a number with a unit, such as 250ms, 10s, 5m or 1h"#,
                #"gantry.yaml:11:33: services[0].endpoints[1]: "nope" is not an endpoint: write host:port, e.g. 127.0.0.1:9001"#,
                #"gantry.yaml:12:20: services[0].loadBalancing: unknown value "leastRequests": expected one of roundRobin, leastRequest, random (did you mean "leastRequest"?)"#,
                #"gantry.yaml:13:25: services[0].timeouts.connect: invalid duration "10 s": write a number with a unit, such as 250ms, 10s, 5m or 1h"#,
            ])
    }

    @Test func missingRequiredKeysPointAtTheirMapping() {
        let yaml = """
            loadBalancer:
              listeners:
                - name: http
            gateway:
              routes:
                - host: example.com
                  service: app
            services:
              - endpoints: [127.0.0.1:1]
            """
        #expect(
            issues(yaml) == [
                #"gantry.yaml:3:7: loadBalancer.listeners[0].port: missing required key "port""#,
                #"gantry.yaml:6:7: gateway.routes[0].path: missing required key "path""#,
                #"gantry.yaml:9:5: services[0].name: missing required key "name""#,
            ])
    }

    @Test func typeErrorsInListsDoNotHideLaterElements() {
        let yaml = """
            loadBalancer:
              listeners:
                - {port: eighty}
                - {port: 8081, name: Bad_Name}
                - {port: [1]}
            """
        #expect(
            issues(yaml) == [
                #"gantry.yaml:3:14: loadBalancer.listeners[0].port: expected an integer, found "eighty""#,
                #"gantry.yaml:4:26: loadBalancer.listeners[1].name: "Bad_Name" is not a valid name: use lowercase letters, digits and '-'"#,
                #"gantry.yaml:5:14: loadBalancer.listeners[2].port: expected an integer, found a list"#,
            ])
    }

    @Test func unknownTopLevelKeyAndDuplicateKey() {
        let yaml = """
            servics: []
            loadBalancer:
              listeners: [{port: 1}]
            """
        #expect(issues(yaml) == [#"gantry.yaml:1:1: servics: unknown key "servics" (did you mean "services"?)"#])
        let duplicate = "loadBalancer:\n  listeners: [{port: 1}]\n  listeners: [{port: 2}]\n"
        #expect(issues(duplicate) == [#"gantry.yaml:2:3: (top level): duplicate key "listeners" in this mapping"#])
    }

    @Test func yamlSyntaxErrorHasPosition() {
        let found = issues("loadBalancer:\n  listeners: [\n")
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("gantry.yaml:3:1: (top level): YAML syntax error") == true)
    }

    @Test func consistentHashNeedsExactlyOneKey() {
        let yaml = """
            loadBalancer: {listeners: [{port: 1}]}
            services:
              - name: a
                endpoints: [127.0.0.1:1]
                loadBalancing: {consistentHash: {clientIP: true, header: x-user}}
              - name: b
                endpoints: [127.0.0.1:1]
                loadBalancing: {consistentHash: {header: x-user}}
            """
        #expect(
            issues(yaml) == [
                #"gantry.yaml:5:37: services[0].loadBalancing.consistentHash: set exactly one of clientIP: true, header: NAME or cookie: NAME"#
            ])
    }
}

/// `admin:` — loopback by default; anywhere else only behind a token.
@Suite struct AdminSpecTests {
    static func admin(_ settings: String) -> String {
        ConfigErrorTests.valid + "\nadmin: \(settings)\n"
    }

    @Test func aNonLoopbackAddressNeedsAToken() throws {
        let open = issues(Self.admin("{address: 0.0.0.0}"))
        #expect(open.count == 1)
        #expect(open.first?.contains("admin.address: 0.0.0.0 opens the admin API") == true, "\(open)")
        #expect(open.first?.contains("set admin.token or admin.tokenFile") == true)
        #expect(issues(Self.admin("{address: 127.0.0.2}")).isEmpty)
        #expect(issues(Self.admin("{address: \"::1\"}")).isEmpty)
        let guarded = try ConfigLoader.load(yaml: Self.admin("{address: 0.0.0.0, token: 0123456789abcdef0123}"), file: "gantry.yaml", coreCount: 2).get()
        #expect(guarded.snapshot.admin.address == "0.0.0.0")
        #expect(guarded.snapshot.admin.token == "0123456789abcdef0123")
    }

    @Test func tokensAreCheckedAndReadFromFiles() throws {
        #expect(issues(Self.admin("{token: short}")).first?.contains("admin.token: the token must be at least 16 characters") == true)
        #expect(issues(Self.admin("{token: 0123456789abcdef, tokenFile: t}")).contains { $0.contains("admin.tokenFile: set token or tokenFile, not both") })
        #expect(issues(Self.admin("{address: example.com, token: 0123456789abcdef}")).first?.contains("is not an IP address") == true)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("admin-token-\(UUID().uuidString)")
        try "fedcba9876543210fedcba\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let loaded = try ConfigLoader.load(yaml: Self.admin("{tokenFile: \(file.path)}"), file: "gantry.yaml", coreCount: 2).get()
        #expect(loaded.snapshot.admin.token == "fedcba9876543210fedcba")
    }

    /// A diff shows that a secret changed, never what it is: `gantry diff`, the RestartNeeded
    /// event and the admin API's config status all print diffs.
    @Test func diffsMaskSecrets() throws {
        let old = try ConfigLoader.load(yaml: Self.admin("{token: first-token-0123456789}"), file: "gantry.yaml", coreCount: 2).get()
        let new = try ConfigLoader.load(yaml: Self.admin("{token: second-token-0123456789}"), file: "gantry.yaml", coreCount: 2).get()
        let diff = ConfigDiff(from: old, to: new)
        #expect(diff.needsRestart.count == 1)
        #expect(!diff.text.contains("first-token") && !diff.text.contains("second-token"), "\(diff.text)")
        #expect(diff.text.contains("(secret #") && diff.needsRestart.first?.from != diff.needsRestart.first?.to, "\(diff.text)")
    }
}

/// Inputs the fuzzer found that once crashed the loader (fuzz/corpus/config/regression-*).
@Suite struct FuzzRegressionTests {
    /// A metric whose only key is misspelt is a problem at its key, not a crash.
    @Test func aMetricWithAMisspeltKeyIsAProblem() {
        let yaml = """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{path: /, service: app}]}
            services:
              - name: app
                pods: {command: [sleep, "100"]}
                autoscaling: {maxReplicas: 3, metrics: [{reques;tsPerSecond: {averageValue: 20}}]}
            """
        let found = issues(yaml)
        #expect(found.contains { $0.contains("services[0].autoscaling.metrics[0]") && $0.contains(#"unknown key "reques;tsPerSecond""#) }, "\(found)")
    }
}
