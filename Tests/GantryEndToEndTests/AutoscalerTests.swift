import Foundation
import GantryTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The example's app-service under load through gantry: the autoscaler scales it out, then
/// back to minReplicas once the load is gone, and no request fails meanwhile.
@Suite(.serialized) struct AutoscalerTests {
    let directory = GantryProcess.scratchDirectory()

    func desiredReplicas(_ admin: Int, of service: String = "app-service") async -> Int? {
        guard let answer = try? await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/services"]),
            let services = try? JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [[String: Any]]
        else { return nil }
        return services.first { $0["name"] as? String == service }?["desiredReplicas"] as? Int
    }

    func readyPods(_ admin: Int, of service: String = "app-service") async -> Int {
        guard let answer = try? await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/pods"]),
            let pods = try? JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [[String: Any]]
        else { return 0 }
        return pods.filter { $0["service"] as? String == service && $0["ready"] as? Bool == true }.count
    }

    @Test func appServiceScalesOutUnderLoadAndBackIn() async throws {
        let config = directory.appendingPathComponent("hpa.yaml")
        try """
        accessLog: {enabled: false}
        admin: {port: 0}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway:
          routes:
            - {host: example.com, path: /app, service: app-service}
        services:
          - name: app-service
            clusterIP: None
            pods:
              command: [gantry, example, app-service]
              env: [{name: DATABASE_PATH, value: app.sqlite}]
              replicas: 2
              resources: {requests: {cpu: 250m}}
              terminationGracePeriodSeconds: 10
              readinessProbe: {httpGet: {path: /healthz}, periodSeconds: 1}
            autoscaling:
              minReplicas: 2
              maxReplicas: 5
              syncPeriod: 1s
              metrics: [{requestsPerSecond: {averageValue: 10}}]
              behavior:
                scaleDown: {stabilizationWindowSeconds: 3}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        #expect(await eventually { await readyPods(admin) == 2 }, "\(gantry.stderr)")

        // A light load all along (about 10 requests/s), a heavy one for a while.
        let light = try LoadGenerator(port: port, path: "/app/work?cpu=1ms", threads: 1, perThreadPause: 0.1, directory: directory)
        #expect(await light.waitForProgress(5))
        let heavy = try LoadGenerator(port: port, path: "/app/work?cpu=1ms", threads: 4, directory: directory)
        #expect(await heavy.waitForProgress(100))
        // Two sync periods after the load crossed the target (plus one for the first rate sample).
        #expect(await eventually(timeout: .seconds(4)) { (await desiredReplicas(admin) ?? 0) > 2 }, "\(gantry.stderr)")
        #expect(await eventually(timeout: .seconds(30)) { await readyPods(admin) > 2 })
        let heavyResult = try await heavy.stop()

        // Light load alone is under the target: back to minReplicas after the 3 s window.
        let backIn = await eventually(timeout: .seconds(30)) {
            let desired = await desiredReplicas(admin)
            let ready = await readyPods(admin)
            return desired == 2 && ready == 2
        }
        #expect(backIn, "\(gantry.stderr)")
        #expect(await light.waitForProgress(10))
        let lightResult = try await light.stop()
        #expect(heavyResult.failureCount == 0, "\(heavyResult.failures)")
        #expect(lightResult.failureCount == 0, "\(lightResult.failures)")

        let events = try await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/events"])
        #expect(events.output.contains("SuccessfulRescale"))
        #expect(events.output.contains("app-service 2 → "), "\(events.output)")
        #expect(events.output.contains("requestsPerSecond"))
        print("autoscaling under load: \(heavyResult.ok + lightResult.ok) requests, 0 failed; events: \(events.output.components(separatedBy: "SuccessfulRescale").count - 1) rescales")
    }

    /// An `External` metric (Kubernetes' autoscaling/v2): the sum of a series at a Prometheus
    /// text endpoint (here a file served by Python's http.server) decides the replicas. 35 jobs
    /// at 10 per replica ask for 4 pods; 5 jobs bring the service back to its minimum.
    @Test func anExternalPrometheusSeriesScalesTheService() async throws {
        let metrics = directory.appendingPathComponent("metrics")
        try "jobs_waiting{queue=\"email\"} 35\njobs_waiting{queue=\"sms\"} 900\n".write(to: metrics, atomically: true, encoding: .utf8)
        let exporter = try GantryProcess(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"], directory: directory, executable: "python3")
        defer { exporter.stop() }
        let exporterPort = try #require(await exporter.waitForPort(after: "Serving HTTP on 127.0.0.1 port ", in: \.stdout), "\(exporter.stderr)")
        let config = directory.appendingPathComponent("external.yaml")
        try """
        accessLog: {enabled: false}
        admin: {port: 0}
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway: {routes: [{path: /, service: workers}]}
        services:
          - name: workers
            clusterIP: None
            pods:
              command: [gantry, example, echo]
              replicas: 1
              readinessProbe: {httpGet: {path: /ready}, periodSeconds: 1}
            autoscaling:
              minReplicas: 1
              maxReplicas: 6
              syncPeriod: 1s
              metrics: [{external: {url: "http://127.0.0.1:\(exporterPort)/metrics", series: 'jobs_waiting{queue="email"}', averageValue: 10}}]
              behavior: {scaleDown: {stabilizationWindowSeconds: 2}}
        """.write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        #expect(await eventually(timeout: .seconds(20)) { await readyPods(admin, of: "workers") == 4 }, "\(gantry.stderr)")
        #expect(await desiredReplicas(admin, of: "workers") == 4)
        try "jobs_waiting{queue=\"email\"} 5\njobs_waiting{queue=\"sms\"} 900\n".write(to: metrics, atomically: true, encoding: .utf8)
        #expect(await eventually(timeout: .seconds(20)) { await desiredReplicas(admin, of: "workers") == 1 }, "\(gantry.stderr)")
        let events = try await run("curl", ["-sf", "http://127.0.0.1:\(admin)/api/events"])
        let messages = (try JSONSerialization.jsonObject(with: Data(events.output.utf8)) as? [[String: Any]] ?? []).compactMap { $0["message"] as? String }
        #expect(messages.contains(#"workers 1 → 4: jobs_waiting{queue="email"} 35/10 per replica"#), "\(messages)")
        #expect(messages.contains(#"workers 4 → 1: jobs_waiting{queue="email"} 5/10 per replica"#), "\(messages)")
    }
}
