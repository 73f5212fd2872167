import Foundation
import GantryHTTP
import GantryTestSupport
import NIOConcurrencyHelpers
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tracing.otlp`: gantry exports its spans with swift-otel to a collector, here an OTLP/HTTP
/// receiver in the test that keeps every export it is sent.
@Suite(.serialized) struct SpanExportTests {
    let directory = GantryProcess.scratchDirectory()

    /// Receives OTLP/HTTP exports and answers each as a collector does (an empty success).
    final class Collector: Sendable {
        struct Export: Sendable {
            let path: String
            let contentType: String
            let body: Data
        }

        final class Exports: Sendable {
            let list = NIOLockedValueBox<[Export]>([])
        }

        private let exports = Exports()
        private let task: Task<Void, Never>
        let port: Int

        var received: [Export] { exports.list.withLockedValue { $0 } }

        init() async throws {
            let exports = self.exports
            let server = SimpleHTTPServer { request in
                let type = request.header("content-type") ?? ""
                exports.list.withLockedValue { $0.append(Export(path: request.path, contentType: type, body: request.body)) }
                return type == "application/json"
                    ? .init(status: 200, headers: [("content-type", "application/json")], body: Data("{}".utf8))
                    : .init(status: 200, headers: [("content-type", "application/x-protobuf")])
            }
            let bound = NIOLockedValueBox<Int?>(nil)
            let serving = Task<Void, Never> {
                _ = try? await server.run(
                    host: "127.0.0.1", port: 0, ready: { port in bound.withLockedValue { $0 = port } },
                    until: { try? await Task.sleep(for: .seconds(3600)) })
            }
            _ = await eventually { bound.withLockedValue { $0 } != nil }
            guard let port = bound.withLockedValue({ $0 }) else {
                serving.cancel()
                throw CollectorError()
            }
            self.port = port
            self.task = serving
        }

        struct CollectorError: Error {}

        deinit { task.cancel() }

        /// Every span of every JSON export, with the resource's `service.name`.
        func jsonSpans() -> [(service: String, span: [String: Any])] {
            received.filter { $0.contentType == "application/json" }.flatMap { export -> [(String, [String: Any])] in
                let object = (try? JSONSerialization.jsonObject(with: export.body)) as? [String: Any] ?? [:]
                return (object["resourceSpans"] as? [[String: Any]] ?? []).flatMap { resource -> [(String, [String: Any])] in
                    let attributes = (resource["resource"] as? [String: Any])?["attributes"] as? [[String: Any]] ?? []
                    let service = Self.attribute("service.name", in: attributes) ?? ""
                    let spans = (resource["scopeSpans"] as? [[String: Any]] ?? []).flatMap { $0["spans"] as? [[String: Any]] ?? [] }
                    return spans.map { (service, $0) }
                }
            }
        }

        /// An attribute's value as text, whatever its OTLP value type.
        static func attribute(_ key: String, in attributes: [[String: Any]]) -> String? {
            guard let value = attributes.first(where: { $0["key"] as? String == key })?["value"] as? [String: Any] else { return nil }
            return (value["stringValue"] as? String) ?? (value["intValue"].map { "\($0)" })
        }

        /// OTLP/JSON says IDs are hex; protobuf's JSON mapping writes bytes as base64. Either reads.
        static func hexID(_ value: Any?) -> String {
            guard let text = value as? String else { return "" }
            if text.count == 32 || text.count == 16, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
            return Data(base64Encoded: text).map { $0.map { String(format: "%02x", $0) }.joined() } ?? ""
        }
    }

    private func startEcho() async throws -> (GantryProcess, Int) {
        let echo = try GantryProcess(["example", "echo", "--port", "0"], directory: directory)
        let port = try #require(await echo.waitForPort(after: "echo listening on http://127.0.0.1:", in: \.stdout))
        return (echo, port)
    }

    private func config(_ name: String, echoPort: Int, otlp: String) throws -> URL {
        let file = directory.appendingPathComponent(name)
        try """
        accessLog: {enabled: false}
        admin: {enabled: false}
        tracing:
          otlp: \(otlp)
        loadBalancer: {listeners: [{name: http, port: 0}]}
        gateway:
          policies:
            - {name: keys, apiKey: {consumers: [{name: ci, keySHA256: ["\(String(repeating: "ab", count: 32))"]}]}}
          routes:
            - {name: app, path: /app, service: app}
            - {name: admin, path: /admin, service: app, policies: [keys]}
        services:
          - {name: app, endpoints: [127.0.0.1:\(echoPort)]}
        """.write(to: file, atomically: true, encoding: .utf8)
        return file
    }

    /// The `traceparent` the echo upstream received.
    private func upstreamTraceparent(_ body: String) -> String? {
        let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        let headers = object?["headers"] as? [[String]] ?? []
        return headers.first { $0.first == "traceparent" }?.last
    }

    @Test func exportsOneServerSpanPerRequestWhoseIDTheUpstreamReceivesOverOTLPJSON() async throws {
        let collector = try await Collector()
        let (echo, echoPort) = try await startEcho()
        defer { echo.stop() }
        let file = try config(
            "otlp-json.yaml", echoPort: echoPort,
            otlp: "{endpoint: \"http://127.0.0.1:\(collector.port)/v1/traces\", protocol: httpJSON, exportInterval: 100ms, serviceName: edge}")
        let gantry = try GantryProcess(["up", file.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")

        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        let clientSpan = "00f067aa0ba902b7"
        let proxied = try await run(
            "curl", ["-s", "-H", "traceparent: 00-\(traceID)-\(clientSpan)-01", "http://127.0.0.1:\(port)/app/dashboard?tab=1"])
        let forwarded = try #require(upstreamTraceparent(proxied.output), "\(proxied.output)")
        let parts = forwarded.split(separator: "-").map(String.init)
        #expect(parts.count == 4 && parts[1] == traceID && parts[2] != clientSpan && parts[3] == "01", "\(forwarded)")
        let denied = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/admin/users"])
        #expect(denied.output == "401")

        // Within a few export intervals: the proxied request's span, under the client's span and
        // with the ID the upstream saw as its parent, and the denied request's span in a trace of
        // its own.
        let arrived = await eventually(timeout: .seconds(15)) {
            let spans = collector.jsonSpans()
            return spans.count >= 2 && spans.contains { Collector.attribute("http.response.status_code", in: $0.span["attributes"] as? [[String: Any]] ?? []) == "401" }
        }
        let spans = collector.jsonSpans()
        #expect(arrived, "\(collector.received.count) exports; gantry: \(gantry.stderr)")
        #expect(collector.received.allSatisfy { $0.path == "/v1/traces" })
        #expect(spans.allSatisfy { $0.service == "edge" })

        func attributes(_ span: [String: Any]) -> [[String: Any]] { span["attributes"] as? [[String: Any]] ?? [] }
        let traced = spans.filter { Collector.hexID($0.span["traceId"]) == traceID }
        #expect(traced.count == 1, "one span per request: \(traced.map(\.span))")
        let server = try #require(traced.first?.span)
        #expect(server["kind"] as? Int == 2, "SPAN_KIND_SERVER")
        #expect(Collector.hexID(server["parentSpanId"]) == clientSpan)
        #expect(Collector.hexID(server["spanId"]) == parts[2], "the upstream's parent is gantry's span")
        #expect(server["name"] as? String == "GET /app")
        #expect(Collector.attribute("http.route", in: attributes(server)) == "/app")
        #expect(Collector.attribute("gantry.route", in: attributes(server)) == "app")
        #expect(Collector.attribute("url.path", in: attributes(server)) == "/app/dashboard")
        #expect(Collector.attribute("http.response.status_code", in: attributes(server)) == "200")
        #expect(Collector.attribute("gantry.request_id", in: attributes(server))?.isEmpty == false)
        #expect(Collector.attribute("gantry.service", in: attributes(server)) == "app")
        #expect(Collector.attribute("gantry.endpoint", in: attributes(server)) == "127.0.0.1:\(echoPort)")
        #expect(Collector.attribute("gantry.attempts", in: attributes(server)) == "1")

        let rejected = try #require(spans.first { Collector.attribute("http.response.status_code", in: attributes($0.span)) == "401" }?.span)
        #expect(Collector.hexID(rejected["traceId"]) != traceID && rejected["parentSpanId"] == nil)
        #expect(Collector.attribute("gantry.detail", in: attributes(rejected)) == "unauthorized")
        #expect(Collector.attribute("url.path", in: attributes(rejected)) == "/admin/users")
        #expect(Collector.attribute("gantry.endpoint", in: attributes(rejected)) == nil)
    }

    @Test func flushesSpansOnShutdownOverOTLPProtobufAndFollowsTheClientsSampledFlag() async throws {
        let collector = try await Collector()
        let (echo, echoPort) = try await startEcho()
        defer { echo.stop() }
        // Batches wait a minute: only the flush at shutdown can deliver them in time.
        let file = try config(
            "otlp-protobuf.yaml", echoPort: echoPort, otlp: "{endpoint: \"http://127.0.0.1:\(collector.port)/v1/traces\", exportInterval: 1m}")
        let gantry = try GantryProcess(["up", file.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")

        let unsampled = "0af7651916cd43dd8448eb211c80319c"
        let sampled = "5bf92f3577b34da6a3ce929d0e0e4736"
        _ = try await run("curl", ["-s", "-H", "traceparent: 00-\(unsampled)-b7ad6b7169203331-00", "http://127.0.0.1:\(port)/app/a"])
        _ = try await run("curl", ["-s", "-H", "traceparent: 00-\(sampled)-b7ad6b7169203331-01", "http://127.0.0.1:\(port)/app/b"])
        #expect(collector.received.isEmpty)

        gantry.signal(SIGTERM)
        #expect(await gantry.waitForExit() == 0)
        let exports = collector.received
        #expect(!exports.isEmpty, "gantry: \(gantry.stderr)")
        #expect(exports.allSatisfy { $0.contentType == "application/x-protobuf" && $0.path == "/v1/traces" })
        // Protobuf carries trace IDs as their 16 raw bytes.
        func bytes(_ hex: String) -> Data {
            Data(stride(from: 0, to: hex.count, by: 2).map { UInt8(hex.dropFirst($0).prefix(2), radix: 16)! })
        }
        let body = exports.reduce(Data()) { $0 + $1.body }
        #expect(body.range(of: bytes(sampled)) != nil)
        #expect(body.range(of: bytes(unsampled)) == nil, "a request whose parent is not sampled is not recorded")
        #expect(body.range(of: Data("gantry".utf8)) != nil, "the default service.name")
    }
}

extension SpanExportTests {
    /// Credentials a client sends (a bearer token, a cookie, API keys in a header and in the
    /// query, on answered and on refused requests) reach none of gantry's sinks: the access
    /// log, the spans it exports, the events. The admin API's token changes hands only as a
    /// digest in diffs and events, and calls that change something need it.
    @Test func secretsReachNoSinkAndTheAdminTokenGuardsChanges() async throws {
        let collector = try await Collector()
        let (echo, echoPort) = try await startEcho()
        defer { echo.stop() }
        let token = "admin-token-0123456789abcdef"
        let queryKey = "SECRET-QUERY-KEY-1"
        // As an operator makes one (docs/configuration.md).
        let digest = try await run("sh", ["-c", "printf %s \(queryKey) | sha256sum"]).output.prefix(64)
        func file(token: String) -> String {
            """
            accessLog: {path: access.log}
            admin: {port: 0, token: \(token)}
            tracing:
              otlp: {endpoint: "http://127.0.0.1:\(collector.port)/v1/traces", protocol: httpJSON, exportInterval: 100ms}
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway:
              policies:
                - {name: keys, apiKey: {consumers: [{name: ci, keySHA256: ["\(String(repeating: "ab", count: 32))"]}]}}
                - {name: query-keys, apiKey: {from: {query: api_key}, consumers: [{name: ci, keySHA256: ["\(digest)"]}]}}
              routes:
                - {name: app, path: /app, service: app}
                - {name: admin, path: /admin, service: app, policies: [keys]}
                - {name: query, path: /q, service: app, policies: [query-keys]}
            services:
              - {name: app, endpoints: [127.0.0.1:\(echoPort)]}
            """
        }
        let config = directory.appendingPathComponent("secrets.yaml")
        try file(token: token).write(to: config, atomically: true, encoding: .utf8)
        let gantry = try GantryProcess(["up", config.path], directory: directory)
        defer { gantry.stop() }
        let port = try #require(await gantry.waitForPort(after: "listener http on http://127.0.0.1:"), "\(gantry.stderr)")
        let admin = try #require(await gantry.waitForPort(after: "admin API on http://127.0.0.1:"), "\(gantry.stderr)")

        let base = "http://127.0.0.1:\(port)"
        _ = try await run("curl", ["-s", "-H", "Authorization: Bearer SECRET-BEARER-1", "-H", "Cookie: session=SECRET-COOKIE-1", "\(base)/app/x"])
        let header = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "X-API-Key: SECRET-HEADER-KEY-1", "\(base)/admin/x"])
        #expect(header.output == "401")
        let query = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/q/x?api_key=\(queryKey)&b=SECRET-QUERY-2"])
        #expect(query.output == "200")
        let refused = try await run(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Bad Name: x", "\(base)/app/x?api_key=SECRET-REFUSED-1"])
        #expect(refused.output == "400")

        // Changes need the token; reads do not.
        let reads = try await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(admin)/api/pods"])
        #expect(reads.output == "200")
        let anonymous = try await run(
            "curl", ["-s", "-i", "-X", "POST", "-d", #"{"replicas": 2}"#, "http://127.0.0.1:\(admin)/api/services/app/scale"])
        #expect(anonymous.output.hasPrefix("HTTP/1.1 401") && anonymous.output.contains(#"WWW-Authenticate: Bearer realm="gantry-admin""#), "\(anonymous.output)")
        try file(token: "another-token-0123456789abcdef").write(to: config, atomically: true, encoding: .utf8)
        let without = try await run(GantryProcess.binary, ["apply", config.path, "--admin", "127.0.0.1:\(admin)"], directory: directory)
        #expect(without.status == 1 && without.error.contains("changes nothing without its token"), "\(without.error)")
        let tokenFile = directory.appendingPathComponent("admin.token")
        try token.write(to: tokenFile, atomically: true, encoding: .utf8)
        let with = try await run(
            GantryProcess.binary, ["apply", config.path, "--admin", "127.0.0.1:\(admin)", "--admin-token-file", tokenFile.path], directory: directory)
        #expect(with.status == 0, "\(with.output) \(with.error)")

        // Every sink, once everything has reached it.
        let log = directory.appendingPathComponent("access.log")
        #expect(
            await eventually(timeout: .seconds(15)) {
                let lines = ((try? String(contentsOf: log, encoding: .utf8)) ?? "").split(separator: "\n").count
                return lines >= 4 && collector.jsonSpans().count >= 3  // a request that never parsed has no span
            }, "\(collector.jsonSpans().count) spans")
        let events = try await run("curl", ["-s", "http://127.0.0.1:\(admin)/api/events"]).output
        #expect(events.contains("RestartNeeded") && events.contains("(secret #"), "\(events)")
        let configStatus = try await run("curl", ["-s", "http://127.0.0.1:\(admin)/api/config"]).output
        let sinks = [
            ("access log", (try? String(contentsOf: log, encoding: .utf8)) ?? ""),
            ("spans", collector.received.map { String(decoding: $0.body, as: UTF8.self) }.joined()),
            ("events", events), ("config status", configStatus), ("gantry's own log", gantry.stderr),
        ]
        for (name, text) in sinks {
            for secret in ["SECRET-", token, "another-token-0123456789abcdef"] {
                #expect(!text.contains(secret), "\(name) holds \(secret)")
            }
        }
        #expect(sinks[0].1.contains(#""path":"/q/x""#) && sinks[0].1.contains(#""path":"/app/x""#))
    }
}
