import Foundation
import GantryConfig
import GantryCore
import GantryTestSupport
import Testing

@testable import GantryProxy

/// WebSockets (RFC 6455) through gantry over HTTP/1.1: Python's `websockets` as the browser
/// and as the service, gantry's route, policies and balancer between them.
extension LiveProxyTests {
    static func webSocketYAML(serverPort: Int, route: String = "", policies: String = "[]") -> ([Int]) -> String {
        { ports in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway:
              policies: \(policies)
              routes:
                - {path: /ws, service: live\(route)}
                - {path: /, service: echo}
            services:
              - {name: live, endpoints: [127.0.0.1:\(serverPort)]}
              - {name: echo, endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]}
            """
        }
    }

    /// The handshake goes through the route to the service with gantry's forwarding fields, the
    /// 101 comes back, and messages go both ways, a 1 MiB one included (more than the socket
    /// buffers hold, so backpressure runs); the tunnel is counted while open and logged once,
    /// as a 101 with its bytes, when the client closes it.
    @Test func aWebSocketIsCarriedBothWaysCountedAndLoggedOnce() async throws {
        let server = try await PythonWebSocket.server()
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        try await withProxy(upstreams: 1, accessLog: sink, yaml: Self.webSocketYAML(serverPort: server.port)) { harness in
            let answer = try await PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/chat")
            let greeting = answer["greeting"] as? [String: Any]
            #expect(greeting?["path"] as? String == "/ws/chat", "\(answer)")
            #expect(greeting?["forwardedFor"] as? String == "127.0.0.1")
            #expect((greeting?["requestId"] as? String)?.isEmpty == false)
            #expect(answer["echo"] as? String == "hello")
            #expect(answer["bigEchoed"] as? Bool == true)

            var lines: [[String: Any]] = []
            #expect(
                await eventually {
                    lines = Self.accessLog(log, sink: sink)
                    return !lines.isEmpty
                })
            #expect(lines.count == 1)
            #expect(lines.first?["status"] as? Int == 101, "\(lines)")
            #expect(lines.first?["path"] as? String == "/ws/chat")
            #expect((lines.first?["bytesIn"] as? Int ?? 0) > 1 << 20)
            #expect((lines.first?["bytesOut"] as? Int ?? 0) > 1 << 20)
            let counters = await harness.plane.counters()
            #expect(counters[.tunnels] == 1)
            #expect(counters[.openTunnels] == 0)
            #expect(counters[.tunnelBytesFromClients] > 1 << 20)
            #expect(counters[.tunnelBytesFromUpstreams] > 1 << 20)
            #expect(harness.plane.endpoints(forService: "live")?.endpoints.first?.inFlight == 0)
        }
    }

    /// The route's policies run on the handshake: a rate limit of one allows the first
    /// WebSocket and answers the second handshake 429, which never reaches the service.
    @Test func policiesRunOnTheHandshake() async throws {
        let server = try await PythonWebSocket.server()
        let yaml = Self.webSocketYAML(
            serverPort: server.port, route: ", policies: [one]", policies: "[{name: one, rateLimit: {requests: 1, per: 1m}}]")
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let first = try await PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/a")
            #expect(first["echo"] as? String == "hello", "\(first)")
            let second = try await PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/b")
            #expect(second["status"] as? Int == 429, "\(second)")
        }
    }

    /// A route that allows no upgrade sends the request on without `Upgrade`, as a plain one
    /// (the service then refuses the handshake); an `h2c` upgrade is never forwarded either.
    @Test func upgradesARouteDoesNotAllowGoNoFurtherThanGantry() async throws {
        let server = try await PythonWebSocket.server()
        try await withProxy(upstreams: 1, yaml: Self.webSocketYAML(serverPort: server.port, route: ", upgrades: []")) { harness in
            let refused = try await PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/a")
            #expect(refused["status"] as? Int == 426, "\(refused)")  // the service's "Upgrade Required"

            let connection = try harness.connect()
            try connection.send(
                request(["GET /plain HTTP/1.1", "Host: example.com", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__"]))
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            let seen = String(decoding: response.body, as: UTF8.self).lowercased()
            #expect(!seen.contains("h2c") && !seen.contains("http2-settings"), "\(seen)")
            // The connection is still HTTP/1.1: a second request on it is answered.
            try connection.send(request(["GET /again HTTP/1.1", "Host: example.com"]))
            #expect(try await connection.readResponse().status == 200)
        }
    }

    /// A tunnel with no traffic for the route's idle timeout is closed by gantry, and so is one
    /// open for its maximum duration; the log says why.
    @Test func anIdleTunnelIsClosedAtTheRoutesTimeout() async throws {
        let server = try await PythonWebSocket.server()
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        let yaml = Self.webSocketYAML(serverPort: server.port, route: ", tunnel: {idleTimeout: 500ms}")
        try await withProxy(upstreams: 1, accessLog: sink, yaml: yaml) { harness in
            let answer = try await PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/quiet", mode: "wait")
            #expect(answer["closeCode"] as? Int == 1006, "\(answer)")  // closed without a close frame
            #expect((answer["seconds"] as? Double ?? 0) >= 0.4, "\(answer)")
            var details: [String] = []
            #expect(await eventually { details = Self.details(in: log, sink: sink); return !details.isEmpty })
            #expect(details == ["tunnel_idle_timeout"])
        }
        // However busy, a tunnel ends at the route's maximum duration.
        let limited = GantryProcess.scratchDirectory().appendingPathComponent("limited.log").path
        let limitedSink = try AccessLogSink(destination: .file(limited))
        let capped = Self.webSocketYAML(serverPort: server.port, route: ", tunnel: {maxDuration: 700ms}")
        try await withProxy(upstreams: 1, accessLog: limitedSink, yaml: capped) { harness in
            let answer = try await PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/capped", mode: "wait")
            #expect(answer["closeCode"] as? Int == 1006, "\(answer)")
            var details: [String] = []
            #expect(await eventually { details = Self.details(in: limited, sink: limitedSink); return !details.isEmpty })
            #expect(details == ["tunnel_max_duration"])
        }
    }

    /// When an endpoint's drain period is over, its WebSockets are closed with 1001 (going
    /// away) to the client, and the log says the tunnel was drained; so are those still open
    /// when gantry itself stops.
    @Test func drainedTunnelsCloseWith1001() async throws {
        let server = try await PythonWebSocket.server()
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        try await withProxy(upstreams: 1, accessLog: sink, yaml: Self.webSocketYAML(serverPort: server.port)) { harness in
            async let waiting = PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/leaving", mode: "wait")
            #expect(await eventually { await harness.plane.counters()[.openTunnels] == 1 })
            await harness.plane.closeTunnels(to: EndpointAddress(host: "127.0.0.1", port: server.port))
            let answer = try await waiting
            #expect(answer["closeCode"] as? Int == 1001, "\(answer)")
            var details: [String] = []
            #expect(await eventually { details = Self.details(in: log, sink: sink); return !details.isEmpty })
            #expect(details == ["tunnel_drained"])
            #expect(await harness.plane.counters()[.openTunnels] == 0)
        }
        let harness = try await ProxyHarness.start(upstreams: 1, yaml: Self.webSocketYAML(serverPort: server.port))
        async let waiting = PythonWebSocket.client("ws://127.0.0.1:\(harness.port)/ws/stopping", mode: "wait")
        #expect(await eventually { await harness.plane.counters()[.openTunnels] == 1 })
        await harness.plane.drain(gracePeriod: .milliseconds(100))
        #expect(try await waiting["closeCode"] as? Int == 1001)
        await harness.stop()
    }

    /// A browser on gantry's HTTP/2 listener opens a WebSocket as RFC 8441 says: an extended
    /// CONNECT on a stream of the connection it loaded the page on (gantry offers
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL), which gantry carries to the HTTP/1.1 service as an
    /// upgrade. Debian's chromium is the browser; the page tells the test what it got by
    /// fetching `/done/<echo>`.
    @Test func aBrowserOpensAWebSocketOverHTTP2() async throws {
        let server = try await PythonWebSocket.server()
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        let page = #"<html><body><script>const ws = new WebSocket("wss://" + location.host + "/ws/h2"); ws.onmessage = (e) => { if (e.data.startsWith("{")) { ws.send("hello"); } else { fetch("/done/" + e.data); } }; const no = new WebSocket("wss://" + location.host + "/closed/h2"); no.onerror = () => fetch("/done/refused");</script></body></html>"#
        let yaml = { (_: [Int]) in
            """
            runtime: {stateDirectory: \(Self.scratch())}
            loadBalancer:
              listeners: [{name: https, port: 0, http2: true, tls: {selfSigned: [example.com]}}]
            gateway:
              policies:
                - {name: page, respond: {contentType: text/html, body: '\(page)'}}
                - {name: done, respond: {status: 204}}
              routes:
                - {path: /page, service: live, policies: [page]}
                - {path: /done, service: live, policies: [done]}
                - {path: /ws, service: live}
                - {path: /closed, service: live, upgrades: []}
            services:
              - {name: live, endpoints: [127.0.0.1:\(server.port)]}
            """
        }
        try await withProxy(upstreams: 0, accessLog: sink, yaml: yaml) { harness in
            let browser = ChildProcess()
            browser.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            browser.arguments = [
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors", "--user-data-dir=\(Self.scratch())",
                "--host-resolver-rules=MAP example.com 127.0.0.1", "https://example.com:\(harness.port)/page",
            ]
            browser.standardOutput = FileHandle.nullDevice
            browser.standardError = FileHandle.nullDevice
            try browser.run()
            defer {
                browser.terminate()
                browser.waitForEnd()
            }
            var lines: [[String: Any]] = []
            #expect(
                await eventually(timeout: .seconds(60)) {
                    lines = Self.accessLog(log, sink: sink)
                    return lines.contains { $0["path"] as? String == "/done/hello" } && lines.contains { $0["path"] as? String == "/done/refused" }
                }, "\(lines)")
            // The route that allows no upgrade refused the extended CONNECT itself.
            let refused = lines.first { $0["path"] as? String == "/closed/h2" }
            #expect(refused?["status"] as? Int == 403 && refused?["detail"] as? String == "upgrade_not_allowed", "\(lines)")
            #expect(refused?["protocol"] as? String == "HTTP/2")
            // The tunnel is logged when it ends: when the browser goes.
            browser.terminate()
            #expect(
                await eventually {
                    lines = Self.accessLog(log, sink: sink)
                    return lines.contains { $0["path"] as? String == "/ws/h2" }
                }, "\(lines)")
            let tunnel = lines.first { $0["path"] as? String == "/ws/h2" }
            #expect(tunnel?["protocol"] as? String == "HTTP/2", "\(lines)")
            #expect(tunnel?["status"] as? Int == 101, "\(lines)")
            let counters = await harness.plane.counters()
            #expect(counters[.tunnels] == 1)
            #expect(counters[.http2Connections] >= 1)
        }
    }

    /// Upgrade requests gantry answers itself, pipelined with a plain one in one write: each is
    /// answered in turn, the bytes held after each upgrade request read as the next request.
    @Test func pipelinedUpgradeRequestsAnsweredLocallyAreEachAnswered() async throws {
        let yaml = { (ports: [Int]) in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{host: example.com, path: /, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:\(ports[0])]}]
            """
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let connection = try harness.connect()
            let upgrade = ["Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
            try connection.send(
                request(["GET /a HTTP/1.1", "Host: other.org"] + upgrade) + request(["GET /b HTTP/1.1", "Host: other.org"] + upgrade)
                    + request(["GET /c HTTP/1.1", "Host: example.com"]))
            #expect(try await connection.readResponse().status == 404)
            #expect(try await connection.readResponse().status == 404)
            #expect(try await connection.readResponse().status == 200)
            // The same, answered by an upstream that does not switch.
            let upstream = try harness.connect()
            try upstream.send(
                request(["GET /a HTTP/1.1", "Host: example.com"] + upgrade) + request(["GET /b HTTP/1.1", "Host: example.com"] + upgrade)
                    + request(["GET /c HTTP/1.1", "Host: example.com"]))
            for path in ["/a", "/b", "/c"] {
                let response = try await upstream.readResponse()
                #expect(response.status == 200)
                #expect(String(decoding: response.body, as: UTF8.self).contains(#""path":"\#(path)""#), "\(path)")
            }
        }
    }

    /// An HTTP/2 request whose head announces no body but whose stream carries DATA (a GET with
    /// a body and no content-length) is refused: the bytes never reach the upstream, where they
    /// would read as a request of their own.
    @Test func unannouncedHTTP2BodiesNeverReachTheUpstream() async throws {
        let yaml = { (ports: [Int]) in
            """
            loadBalancer: {listeners: [{name: h2c, port: 0, http2: true}]}
            gateway: {routes: [{path: /, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:\(ports[0])]}]
            """
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let smuggled = "GET /hidden HTTP/1.1\r\nHost: example.com\r\n\r\n"
            let sent = try await run(
                "curl",
                ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge", "-X", "GET", "-H", "Content-Length:", "--data-binary", smuggled,
                    "http://127.0.0.1:\(harness.port)/visible"])
            #expect(sent.output == "400", "\(sent.output) \(sent.error)")
            #expect(harness.upstreamRequestCount == 0)
        }
    }

    @Test func upgradesAreCheckedWhenTheFileLoads() throws {
        let yaml = """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{path: /, service: app, upgrades: [websocket, h2c, "no good"]}]}
            services: [{name: app, endpoints: [127.0.0.1:9]}]
            """
        guard case .failure(let error) = ConfigLoader.load(yaml: yaml, file: "gantry.yaml", coreCount: 2) else {
            Issue.record("loaded")
            return
        }
        #expect(error.description.contains("gateway.routes[0].upgrades[1]: h2c is not an upgrade gantry forwards"), "\(error)")
        #expect(error.description.contains("gateway.routes[0].upgrades[2]: \"no good\" is not a protocol name"), "\(error)")
    }
}
