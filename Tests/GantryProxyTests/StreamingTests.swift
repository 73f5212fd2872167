import Foundation
import GantryTestSupport
import NIOPosix
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    static let bigBody = 64 << 20

    @Test func streamsAChunkedUploadOfAnySize() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["POST /upload HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"]))
            let chunk = [UInt8](repeating: UInt8(ascii: "z"), count: 64 * 1024)
            let header = Array("10000\r\n".utf8)
            for _ in 0..<(Self.bigBody / chunk.count) { try connection.send(header + chunk + [13, 10]) }
            try connection.send("0\r\n\r\n")
            let response = try await connection.readResponse(timeout: 60)
            #expect(response.status == 200)
            #expect(try response.json()["bodyBytes"] as? Int == Self.bigBody)
        }
    }

    @Test func streamsAContentLengthUpload() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["PUT /upload HTTP/1.1", "Host: a", "Content-Length: \(Self.bigBody)"]))
            let chunk = [UInt8](repeating: UInt8(ascii: "y"), count: 256 * 1024)
            for _ in 0..<(Self.bigBody / chunk.count) { try connection.send(chunk) }
            let response = try await connection.readResponse(timeout: 60)
            #expect(try response.json()["bodyBytes"] as? Int == Self.bigBody)
        }
    }

    @Test(arguments: [false, true])
    func streamsADownloadOfAnySize(chunked: Bool) async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(
                request(["GET /download HTTP/1.1", "Host: a", "X-Echo-Bytes: \(Self.bigBody)", "X-Echo-Chunked: \(chunked ? 1 : 0)"]))
            let (head, received) = try await connection.readResponseCountingBody()
            #expect(head.status == 200)
            #expect(received == Self.bigBody)
            #expect((head.header("transfer-encoding") == "chunked") == chunked)
            // The connection is still good for another request.
            try connection.send(request(["GET /again HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().status == 200)
        }
    }

    @Test func answers100ContinueAndThenStreamsTheBody() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["POST /upload HTTP/1.1", "Host: a", "Content-Length: 5", "Expect: 100-continue"]))
            let interim = try await connection.readResponse()
            #expect(interim.status == 100)
            try connection.send("hello")
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            let echo = try response.json()
            #expect(echo["body"] as? String == "hello")
            let names = (echo["headers"] as? [[String]] ?? []).map { $0[0].lowercased() }
            #expect(!names.contains("expect"))
        }
    }

    /// A full disk (/dev/full answers every write with ENOSPC) loses access-log lines, never
    /// requests: each is answered, and the lines dropped are counted for /metrics.
    @Test func aFullDiskDropsAccessLogLinesNotRequests() async throws {
        let sink = try AccessLogSink(destination: .file("/dev/full"))
        try await withProxy(upstreams: 1, accessLog: sink) { harness in
            for index in 0..<20 {
                let response = try await harness.get("/\(index)")
                #expect(response.status == 200)
            }
            #expect(await eventually { harness.plane.accessLogDroppedLines == 20 }, "\(harness.plane.accessLogDroppedLines)")
        }
    }

    /// A connection's requests reuse one exchange: nothing of the one before may carry over
    /// (a 100 Continue already sent, the bytes counted, the attempts made).
    @Test func eachRequestOnAConnectionStartsAfresh() async throws {
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-access-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        try await withProxy(upstreams: 1, accessLog: AccessLogSink(destination: .file(logPath))) { harness in
            let connection = try harness.connect()
            for (path, body) in [("/first", "hello"), ("/second", "abc")] {
                try connection.send(request(["POST \(path) HTTP/1.1", "Host: a", "Content-Length: \(body.utf8.count)", "Expect: 100-continue"]))
                #expect(try await connection.readResponse(timeout: 5).status == 100)
                try connection.send(body)
                let response = try await connection.readResponse()
                #expect(try response.json()["path"] as? String == path && response.json()["body"] as? String == body)
            }
            try connection.send(request(["GET /third HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().status == 200)
            var records: [[String: Any]] = []
            #expect(
                await eventually {
                    let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                    records = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                    return records.count == 3
                })
            #expect(records.map { $0["path"] as? String } == ["/first", "/second", "/third"])
            #expect(records.map { $0["bytesIn"] as? Int } == [5, 3, 0])
            #expect(records.map { $0["attempts"] as? Int } == [1, 1, 1])
            #expect(records.map { $0["status"] as? Int } == [200, 200, 200])
        }
    }

    @Test func expectContinueOnARejectedRequestGetsTheRejectionAndAClose() async throws {
        try await withProxy(upstreams: 1, yaml: { ports in
            """
            loadBalancer: {listeners: [{port: 0}]}
            gateway: {routes: [{path: /app, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:\(ports[0])]}]
            """
        }) { harness in
            let connection = try harness.connect()
            try connection.send(request(["POST /nowhere HTTP/1.1", "Host: a", "Content-Length: 5", "Expect: 100-continue"]))
            let response = try await connection.readResponse()
            #expect(response.status == 404)
            #expect(response.header("connection") == "close")
            #expect(await connection.waitForClose())
            #expect(harness.upstreamRequestCount == 0)
        }
    }

    @Test func headResponsesHaveNoBody() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["HEAD /file HTTP/1.1", "Host: a", "X-Echo-Bytes: 1000"]))
            let head = try await connection.readResponse(head: true)
            #expect(head.status == 200)
            #expect(head.header("content-length") == "1000")
            try connection.send(request(["GET /next HTTP/1.1", "Host: a"]))
            let next = try await connection.readResponse()
            #expect(try next.json()["path"] as? String == "/next")
        }
    }

    @Test(arguments: [204, 304])
    func bodilessStatusesKeepTheConnectionUsable(status: Int) async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /a HTTP/1.1", "Host: a", "X-Echo-Status: \(status)"]))
            let first = try await connection.readResponse()
            #expect(first.status == status)
            #expect(first.body.isEmpty)
            try connection.send(request(["GET /b HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().json()["path"] as? String == "/b")
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await withProxy(upstreams: 2) { harness in
            let connection = try harness.connect()
            try connection.send(
                request(["GET /one HTTP/1.1", "Host: a", "X-Echo-Delay: 300ms"])
                    + request(["GET /two HTTP/1.1", "Host: a"])
                    + request(["POST /three HTTP/1.1", "Host: a", "Content-Length: 3"]) + "abc"
                    + request(["GET /four HTTP/1.1", "Host: a"]))
            var paths: [String] = []
            for _ in 0..<4 { paths.append(try await connection.readResponse().json()["path"] as? String ?? "") }
            #expect(paths == ["/one", "/two", "/three", "/four"])
        }
    }

    @Test func aClientThatLeavesCancelsTheUpstreamExchange() async throws {
        let silent = try await MisbehavingUpstream(mode: .neverAnswer, group: MultiThreadedEventLoopGroup.singleton)
        try await withProxy(upstreams: 0, yaml: { _ in
            """
            loadBalancer: {listeners: [{port: 0}]}
            gateway: {routes: [{path: /, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:\(silent.port)]}]
            """
        }) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /slow HTTP/1.1", "Host: a"]))
            #expect(await eventually { silent.requests == 1 })
            connection.closeNow()
            #expect(await eventually { silent.closedConnections == 1 })
            #expect(await eventually { await harness.plane.counters()[.clientAborts] == 1 })
        }
    }

    @Test func aClientThatStopsReadingStopsTheUpstreamRead() async throws {
        // Backpressure: the client reads nothing, so gantry must stop reading the upstream once
        // the socket buffers fill, and the download stalls instead of piling up in memory.
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /big HTTP/1.1", "Host: a", "X-Echo-Bytes: \(1 << 30)"]))
            try await Task.sleep(for: .milliseconds(500))
            let stalledAt = try await harness.plane.bufferedResponseBytes()
            #expect(stalledAt < 16 << 20, "gantry buffered \(stalledAt) bytes for a client that does not read")
            let (head, received) = try await connection.readResponseCountingBody(timeout: 120)
            #expect(head.status == 200)
            #expect(received == 1 << 30)
        }
    }
}
