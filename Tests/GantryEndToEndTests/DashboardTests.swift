import Foundation
import GantryTestSupport
import Testing

/// The admin port's Prometheus metrics and dashboard, on the built-in example, checked with
/// curl and a real headless browser (Debian's chromium).
extension PodTests {
    @Test func metricsTraceAndTheDashboardShowTheRequestPath() async throws {
        let gantry = try GantryProcess(["up"], directory: directory)
        defer { gantry.stop() }
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")
        #expect(await waitForReady(admin, count: 3), "\(gantry.stderr)")
        for _ in 0..<5 {
            _ = try await run("curl", ["-s", "-o", "/dev/null", "-H", "Host: example.com", "http://127.0.0.1:8080/auth/.well-known/jwks.json"])
        }
        _ = try await run("curl", ["-s", "-o", "/dev/null", "-H", "Host: example.com", "http://127.0.0.1:8080/app/dashboard"])  // 401

        let metrics = try await run("curl", ["-s", "-D", "-", "http://127.0.0.1:\(admin)/metrics"]).output
        #expect(metrics.contains("Content-Type: text/plain; version=0.0.4"), "\(metrics.prefix(300))")
        let lines = metrics.split(separator: "\n")
        func value(_ series: String) -> Double? {
            lines.first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        #expect(value(#"gantry_requests_total{route="example.com/auth",service="auth-service",code="200"}"#) == 5, "\(metrics)")
        #expect(value(#"gantry_request_duration_seconds_count{route="example.com/auth",stage="total"}"#) == 5)
        #expect(value(#"gantry_request_duration_seconds_bucket{route="example.com/auth",stage="total",le="+Inf"}"#) == 5)
        #expect(value(#"gantry_local_responses_total{reason="unauthorized",code="401"}"#) == 1)
        #expect(value(#"gantry_service_ready_endpoints{service="app-service"}"#) == 2)
        #expect(value(#"gantry_replicas_desired{service="app-service"}"#) == 2)
        #expect(lines.filter { $0.hasPrefix(#"gantry_pod_ready{service="app-service""#) && $0.hasSuffix(" 1.0") }.count == 2)
        #expect(value("gantry_proxy_unauthorized_total") == 1)
        #expect(value("gantry_config_generation") == 1)
        #expect(value(#"gantry_config_reloads_total{result="rejected"}"#) == 0)

        // One request's path, hop by hop: DNS, TLS with the local CA, route, pod, timings.
        let trace = try await run(GantryProcess.binary, ["trace", "https://example.com:8443/auth/.well-known/jwks.json"], directory: directory)
        for part in [
            "example.com → 127.0.0.1 from 127.0.0.1:5353 (authoritative)", "TLS 1.3 with SNI example.com", "route example.com/auth · policies none: passed",
            "auth-service → 127.0.1", "(pod auth-service-", "200 · ", "total inside gantry",
        ] {
            #expect(trace.output.contains(part), "\(part)\n\(trace.output)\(trace.error)")
        }
        let refused = try await run(GantryProcess.binary, ["trace", "http://example.com:8080/app/dashboard"], directory: directory)
        #expect(refused.output.contains("answered here: unauthorized") && refused.output.contains("401 · "), "\(refused.output)")

        // The page, run by a real browser: its script draws the path from the admin API.
        let pods = try await pods(admin)
        let url = "http://127.0.0.1:\(admin)/"
        let browser = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000", "--window-size=1400,1000"]
        var dom = ""
        #expect(
            await eventually(timeout: .seconds(60)) {
                dom = (try? await run("chromium", browser + ["--dump-dom", url], timeout: .seconds(30)).output) ?? ""
                return dom.contains(#"data-loaded="true""#)
            }, "\(dom.prefix(2000))")
        for name in ["example.com/app", "jwt → rateLimit", "app-service", "auth-service", "127.0.0.1:8443"] + pods.map(\.name) {
            #expect(dom.contains(name), "\(name) is not on the page")
        }
        #expect(dom.contains("3/3 pods ready"))
        #expect(dom.contains("config generation 1 ("))

        let screenshot = directory.appendingPathComponent("dashboard.png").path
        let shot = try await run("chromium", browser + ["--screenshot=\(screenshot)", url], directory: directory, timeout: .seconds(60))
        let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "\(shot.error)")
    }
}
