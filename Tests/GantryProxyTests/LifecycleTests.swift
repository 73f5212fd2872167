import Foundation
import GantryTestSupport
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    @Test func drainingLetsRequestsInFlightFinishAndRefusesNewConnections() async throws {
        try await withProxy(upstreams: 2) { harness in
            let connections = try (0..<6).map { _ in try harness.connect() }
            for (index, connection) in connections.enumerated() {
                try connection.send(request(["GET /slow/\(index) HTTP/1.1", "Host: a", "X-Echo-Delay: 400ms"]))
            }
            #expect(await eventually { harness.upstreamRequestCount == 6 })
            let started = ContinuousClock.now
            async let drained: Void = harness.plane.drain(gracePeriod: .seconds(10))
            // Once draining, the listener is gone.
            #expect(await eventually { (try? RawHTTPConnection(port: harness.port)) == nil })
            for connection in connections {
                let response = try await connection.readResponse()
                #expect(response.status == 200)
                #expect(response.header("connection") == "close")
            }
            await drained
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(await harness.plane.connectionCount() == 0)
        }
    }

    @Test func drainingGivesUpAfterTheGracePeriod() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /stuck HTTP/1.1", "Host: a", "X-Echo-Delay: 30s"]))
            #expect(await eventually { harness.upstreamRequestCount == 1 })
            let started = ContinuousClock.now
            await harness.plane.drain(gracePeriod: .milliseconds(300))
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(await connection.waitForClose())
        }
    }

    @Test func idleClientConnectionsAreClosed() async throws {
        try await withProxy(upstreams: 1, yaml: { ports in
            """
            loadBalancer:
              listeners: [{port: 0}]
              timeouts: {idle: 300ms}
            gateway: {routes: [{path: /, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:\(ports[0])]}]
            """
        }) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET / HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().status == 200)
            let started = ContinuousClock.now
            #expect(await connection.waitForClose(timeout: 5))
            #expect(ContinuousClock.now - started >= .milliseconds(200))
        }
    }

    /// A client whose request says it is its last (`Connection: close`, or HTTP/1.0 without
    /// keep-alive) has sent all it will: once the answer is out, the connection closes whole, at
    /// once, as nginx's does, rather than half-closing and reading on until the client closes
    /// too. A byte the client sends after it meets a closed socket, which the kernel answers
    /// with a reset. Both for an answer from upstream and for one gantry gives itself while it
    /// reads the request (`OPTIONS *`).
    @Test func aClientsLastRequestClosesTheConnectionWhole() async throws {
        try await withProxy(upstreams: 1) { harness in
            let requests = [
                ["GET /last HTTP/1.1", "Host: a", "Connection: close"], ["GET /last HTTP/1.0"],
                ["OPTIONS * HTTP/1.1", "Host: a", "Connection: close"],
            ]
            for lines in requests {
                let connection = try harness.connect()
                try connection.send(request(lines))
                #expect(try await connection.readResponse().status == 200)
                #expect(await connection.waitForClose())
                try connection.send("x")
                #expect(await connection.waitForReset(), "\(lines[0])")
            }
        }
    }

    /// Accepted connections send small writes at once (TCP_NODELAY), which gantry sets on the
    /// listening socket for every connection it accepts to inherit. The data plane runs in this
    /// process, so its end of the connection is one of this process's descriptors.
    @Test func acceptedConnectionsSendWithoutDelay() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET / HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().status == 200)
            let accepted = try #require(Self.descriptor(localPort: harness.port, peerPort: connection.localPort))
            var noDelay: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(accepted, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, &length)
            #expect(noDelay == 1)
        }
    }

    /// This process's TCP socket bound to `localPort` and connected from `peerPort` on loopback.
    private static func descriptor(localPort: Int, peerPort: Int) -> Int32? {
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return descriptors.compactMap(Int32.init).first {
            RawHTTPConnection.port(of: $0, end: .local) == localPort && RawHTTPConnection.port(of: $0, end: .peer) == peerPort
        }
    }

    @Test func http10ClientsGetKeepAliveOnlyWhenTheyAskForIt() async throws {
        try await withProxy(upstreams: 1) { harness in
            let closing = try harness.connect()
            try closing.send(request(["GET /a HTTP/1.0"]))
            let first = try await closing.readResponse()
            #expect(first.version == "HTTP/1.0")
            #expect(first.status == 200)
            #expect(await closing.waitForClose())

            let keeping = try harness.connect()
            try keeping.send(request(["GET /a HTTP/1.0", "Connection: keep-alive"]))
            #expect(try await keeping.readResponse().header("connection") == "keep-alive")
            try keeping.send(request(["GET /b HTTP/1.0", "Connection: keep-alive"]))
            #expect(try await keeping.readResponse().json()["path"] as? String == "/b")

            // A chunked upstream body reaches an HTTP/1.0 client without chunk framing or
            // Transfer-Encoding (it knows neither), and ends with the connection.
            let chunked = try harness.connect()
            try chunked.send(request(["GET /c HTTP/1.0", "Connection: keep-alive", "X-Echo-Bytes: 10", "X-Echo-Chunked: 1"]))
            let unframed = try await chunked.readResponse()
            #expect(unframed.header("transfer-encoding") == nil)
            #expect(unframed.header("connection") == nil)
            #expect(unframed.body.count == 10)
            #expect(await chunked.waitForClose())

            // Without Host (HTTP/1.0 allows that), the upstream, spoken to in HTTP/1.1, gets the
            // service's name.
            let hostless = try harness.connect()
            try hostless.send("GET /h HTTP/1.0\r\n\r\n")
            let echoed = try await hostless.readResponse().json()["headers"] as? [[String]] ?? []
            #expect(echoed.filter { $0[0].lowercased() == "host" }.map { $0[1] } == ["app"])
        }
    }


    @Test func accessLogHasOneJSONLinePerRequest() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-access-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try AccessLogSink(destination: .file(path))
        try await withProxy(upstreams: 1, accessLog: sink) { harness in
            let ok = try await harness.get("/app/x?q=1", headers: ["X-Request-ID: log-test-1"])
            #expect(ok.status == 200)
            let connection = try harness.connect()
            try connection.send("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
            #expect(try await connection.readResponse().status == 400)
            var lines: [[String: Any]] = []
            #expect(
                await eventually {
                    sink.sync()
                    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                    lines = text.split(separator: "\n").compactMap {
                        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
                    }
                    return lines.count == 2
                })
            let first = try #require(lines.first)
            #expect(first["requestId"] as? String == "log-test-1")
            #expect(first["method"] as? String == "GET")
            #expect(first["path"] as? String == "/app/x")
            #expect(first["route"] as? String == "/")
            #expect(first["service"] as? String == "app")
            #expect(first["endpoint"] as? String == "127.0.0.1:\(harness.upstreamPorts[0])")
            #expect(first["status"] as? Int == 200)
            #expect((first["bytesOut"] as? Int ?? 0) > 0)
            #expect(first["upstreamMs"] is Double || first["upstreamMs"] is Int)
            #expect(first["client"] as? String == "127.0.0.1")
            #expect((first["time"] as? String)?.hasSuffix("Z") == true)
            let second = try #require(lines.last)
            #expect(second["status"] as? Int == 400)
            #expect(second["detail"] as? String == "bad_request")
        }
    }
}
