import GantryConfig
import GantryCore
import Testing

@testable import GantryProxy

/// Each event loop counts its requests in plain numbers; a scrape adds the loops up and writes
/// Prometheus text.
struct RequestSeriesTests {
    let route = #"example.com/"app""#

    @Test func loopsAddUpIntoPrometheusText() {
        let first = RequestMetrics()
        let second = RequestMetrics()
        first.counts(route: route, service: "app-service").record(status: 200, totalNanoseconds: 300_000, upstreamMilliseconds: 0.2)
        first.counts(route: route, service: "app-service").record(status: 200, totalNanoseconds: 2_000_000, upstreamMilliseconds: nil)
        second.counts(route: route, service: "app-service").record(status: 503, totalNanoseconds: 20_000_000_000, upstreamMilliseconds: nil)
        second.recordLocal(reason: .unauthorized, status: 401)
        second.recordLocal(reason: .unauthorized, status: 401)
        first.recordLocal(reason: .noRoute, status: 404)
        var series = first.series
        series.add(second.series)
        let lines = series.prometheusText.split(separator: "\n").map(String.init)

        let route = #"route="example.com/\"app\"""#
        #expect(lines.contains(#"gantry_requests_total{\#(route),service="app-service",code="200"} 2"#), "\(lines)")
        #expect(lines.contains(#"gantry_requests_total{\#(route),service="app-service",code="503"} 1"#))
        // Buckets are cumulative: 0.3 ms, 2 ms, then 20 s above the last bound.
        let total = #"\#(route),stage="total""#
        for (bound, count) in [("0.0005", 1), ("0.001", 1), ("0.0025", 2), ("10.0", 2), ("+Inf", 3)] {
            #expect(lines.contains(#"gantry_request_duration_seconds_bucket{\#(total),le="\#(bound)"} \#(count)"#), "\(bound)")
        }
        #expect(lines.contains(#"gantry_request_duration_seconds_count{\#(total)} 3"#))
        let sum = lines.first { $0.hasPrefix("gantry_request_duration_seconds_sum{\(total)} ") }
        #expect(abs((sum?.split(separator: " ").last.flatMap { Double($0) } ?? 0) - 20.0023) < 1e-9)
        // Only requests the upstream answered have an upstream stage.
        #expect(lines.contains(#"gantry_request_duration_seconds_count{\#(route),stage="upstream"} 1"#))
        #expect(lines.contains(#"gantry_request_duration_seconds_bucket{\#(route),stage="upstream",le="0.0005"} 1"#))
        #expect(lines.contains(#"gantry_local_responses_total{reason="unauthorized",code="401"} 2"#))
        #expect(lines.contains(#"gantry_local_responses_total{reason="no_route",code="404"} 1"#))
        for family in ["gantry_requests_total counter", "gantry_request_duration_seconds histogram", "gantry_local_responses_total counter"] {
            #expect(lines.filter { $0 == "# TYPE \(family)" }.count == 1)
        }
    }

    @Test func nothingCountedWritesNothing() {
        #expect(RequestMetrics().series.prometheusText.isEmpty)
    }
}
