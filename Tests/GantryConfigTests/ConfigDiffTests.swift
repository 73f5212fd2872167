import Testing

@testable import GantryConfig

/// What a new file changes in a running one, object by object, as `gantry diff` prints it.
@Suite struct ConfigDiffTests {
    static let base = """
        runtime: {workers: 2}
        loadBalancer:
          listeners: [{name: http, port: 8080}]
        gateway:
          policies:
            - {name: limit, rateLimit: {requests: 5, per: 1s}}
            - {name: stamp, transform: {responseHeaders: {add: [{name: X-A, value: a}]}}}
          routes:
            - {name: app, path: /app, service: app, policies: [limit]}
            - {name: api, path: /api, service: app}
        services:
          - name: app
            pods: {command: [gantry, example, echo], replicas: 2}
          - name: static
            endpoints: [127.0.0.1:9001]
        """

    static func diff(_ new: String, from old: String = base) throws -> ConfigDiff {
        let before = try ConfigLoader.load(yaml: old, file: "gantry.yaml", coreCount: 2).get()
        let after = try ConfigLoader.load(yaml: new, file: "gantry.yaml", coreCount: 2).get()
        return ConfigDiff(from: before, to: after)
    }

    @Test func theSameFileLaidOutDifferentlyChangesNothing() throws {
        let reflowed = Self.base.replacingOccurrences(of: "{requests: 5, per: 1s}", with: "{per: 1s, requests: 5}")
        #expect(try Self.diff(reflowed).isEmpty)
        #expect(try Self.diff(Self.base).text == "no changes\n")
    }

    @Test func anImageOnlyTheKubernetesExportReadsChangesNothingHere() throws {
        let diff = try Self.diff(Self.base.replacingOccurrences(of: "replicas: 2}", with: "replicas: 2, image: registry.example/app:2}"))
        #expect(diff.isEmpty, "\(diff.text)")
    }

    @Test func eachKindOfChangeIsNamed() throws {
        let new = Self.base
            .replacingOccurrences(of: "{requests: 5, per: 1s}", with: "{requests: 9, per: 1s}")
            .replacingOccurrences(of: "    - {name: api, path: /api, service: app}", with: "    - {name: web, path: /web, service: app}")
            .replacingOccurrences(of: "replicas: 2}", with: "replicas: 3, env: [{name: A, value: b}]}")
            .replacingOccurrences(of: "endpoints: [127.0.0.1:9001]", with: "endpoints: [127.0.0.1:9002]")
            .replacingOccurrences(of: "[{name: http, port: 8080}]", with: "[{name: http, port: 8080}, {name: other, port: 8081}]")
            .replacingOccurrences(of: "workers: 2", with: "workers: 4")
        let diff = try Self.diff(new)
        let lines = diff.text.split(separator: "\n").map(String.init)
        for expected in [
            "~ policy limit changed: its state starts afresh", "    rateLimit.requests: 5 → 9",
            "+ route web added", "- route api removed",
            "~ pods app changed: every pod is replaced, new before old (maxSurge 25%, maxUnavailable 25%)",
            "    pods.env: added [{name: A, value: b}]",
            "~ replicas app changed", "    pods.replicas: 2 → 3",
            "~ endpoints static changed", "    endpoints[0]: 127.0.0.1:9001 → 127.0.0.1:9002",
            "+ listener other added",
            "! runtime.workers: 2 → 4 takes effect when gantry restarts (the event loops are made when gantry starts)",
        ] {
            #expect(lines.contains(expected), "missing \(expected) in\n\(diff.text)")
        }
        #expect(diff.names(.service, .added).isEmpty)
        #expect(!lines.contains { $0.contains("policy stamp") })
    }

    @Test func reorderedRoutesAndRemovedServicesAreSaid() throws {
        let new = """
            runtime: {workers: 2}
            loadBalancer:
              listeners: [{name: http, port: 8080}]
            gateway:
              routes:
                - {name: api, path: /api, service: app}
                - {name: app, path: /app, service: app}
            services:
              - name: app
                pods: {command: [gantry, example, echo], replicas: 2}
            """
        let diff = try Self.diff(new)
        #expect(diff.changes(of: .routeOrder).first?.details == ["app, api → api, app"])
        #expect(diff.names(.service, .removed) == ["static"])
        #expect(diff.names(.policy, .removed) == ["limit", "stamp"])
        #expect(diff.changes(of: .route).contains { $0.name == "app" && $0.details == ["policies: removed (was [limit])"] })
    }
}
