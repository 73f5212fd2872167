import Foundation
import GantryTestSupport
import Testing

@testable import GantryProxy

/// W3C trace context through the proxy, and Server-Timing when asked for and allowed.
extension LiveProxyTests {
    static func tracingYAML(serverTiming: Bool) -> ([Int]) -> String {
        { ports in
            """
            accessLog: {enabled: false}
            tracing: {serverTiming: \(serverTiming)}
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{host: example.com, path: /, service: app}]}
            services:
              - name: app
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
        }
    }

    /// The `traceparent` the upstream received.
    private func upstreamTraceparent(_ response: RawResponse) throws -> String? {
        let headers = (try response.json()["headers"] as? [[String]]) ?? []
        return headers.first { $0.first == "traceparent" }?.last
    }

    @Test func propagatesTraceContextAndAnswersServerTimingWhenAskedAndAllowed() async throws {
        try await withProxy(yaml: Self.tracingYAML(serverTiming: true)) { harness in
            // No trace from the client: gantry starts one, unsampled, and says nothing about timing.
            let plain = try await harness.get("/a")
            let started = try #require(try upstreamTraceparent(plain))
            #expect(started.count == 55 && started.hasPrefix("00-") && started.hasSuffix("-00"), "\(started)")
            #expect(plain.header("server-timing") == nil)

            // A sampled trace: same trace ID, gantry's own span, and Server-Timing.
            let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let traced = try await harness.get("/b", headers: ["traceparent: \(client)", "tracestate: vendor=1"])
            let forwarded = try #require(try upstreamTraceparent(traced))
            #expect(forwarded.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") && forwarded.hasSuffix("-01"))
            #expect(!forwarded.contains("00f067aa0ba902b7"))
            let timing = try #require(traced.header("server-timing"))
            for part in ["gateway;dur=", "connect;dur=", "upstream;dur=", "total;dur=", #"route;desc="example.com/""#, #"service;desc="app""#,
                #"trace;desc="4bf92f3577b34da6a3ce929d0e0e4736""#]
            {
                #expect(timing.contains(part), "\(timing)")
            }
            #expect(harness.upstreamPorts.contains { timing.contains(#"endpoint;desc="127.0.0.1:\#($0)""#) })

            // Answered by gantry itself: which stage said no.
            let missing = try await harness.get("/c", headers: ["X-Gantry-Trace: 1"], host: "other.org")
            #expect(missing.status == 404)
            #expect(missing.header("server-timing")?.hasPrefix(#"gateway;desc="no_route";dur="#) == true)
        }
    }

    @Test func serverTimingStaysOffUnlessTheFileAllowsIt() async throws {
        try await withProxy(yaml: Self.tracingYAML(serverTiming: false)) { harness in
            let traced = try await harness.get("/b", headers: ["traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Gantry-Trace: 1"])
            #expect(traced.header("server-timing") == nil)
            #expect(try upstreamTraceparent(traced)?.hasPrefix("00-4bf92f3577b34da6a3ce929d0e0e4736-") == true)
            // A malformed traceparent is replaced by a new trace (and its tracestate dropped).
            let bad = try await harness.get("/c", headers: ["traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01", "tracestate: a=b"])
            let replaced = try #require(try upstreamTraceparent(bad))
            #expect(!replaced.contains("00000000000000000000000000000000"))
            let headers = (try bad.json()["headers"] as? [[String]]) ?? []
            #expect(!headers.contains { $0.first == "tracestate" })
        }
    }
}
