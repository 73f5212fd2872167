import Foundation
import GantryConfig
import GantryCore
import GantryTestSupport
import NIOCore
import NIOEmbedded
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    static func edgeYAML(perClient: Int, perSecond: Int) -> ([Int]) -> String {
        { ports in
            """
            loadBalancer:
              listeners: [{name: http, port: 0}]
              limits: {maxConnectionsPerClient: \(perClient), newConnectionsPerSecondPerClient: \(perSecond), maxBodySize: 10}
              timeouts: {requestHeaders: 1s}
            accessLog: {enabled: false}
            gateway: {routes: [{path: /, service: app}]}
            services:
              - name: app
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
        }
    }

    private func answered(_ connection: RawHTTPConnection) async -> Bool {
        do {
            try connection.send(request(["GET /x HTTP/1.1", "Host: example.com"]))
            return try await connection.readResponse().status == 200
        } catch {
            return false
        }
    }

    /// The limits are checked as a connection is accepted, with no handler of their own: an
    /// admitted connection's reads go straight to the HTTP handler, its slot is given back at
    /// close, and one over the limits is refused before it has a pipeline.
    @Test func theConnectionLimitsAreCheckedWithoutAHandler() throws {
        let snapshot = try ConfigLoader.load(yaml: Self.edgeYAML(perClient: 1, perSecond: 1000)([9]), file: "test.yaml", coreCount: 1)
            .get().snapshot
        let limiter = ConnectionLimiter(limits: snapshot.limits)
        let pipeline = ListenerPipeline(listener: snapshot.listeners[0], tls: nil)
        func accepted() throws -> (EmbeddedChannel, LoopContext) {
            let channel = EmbeddedChannel()
            let loop = LoopContext(
                eventLoop: channel.eventLoop, state: .first(for: snapshot, registry: EndpointRegistry()),
                accessLog: nil, connectionLimiter: limiter)
            // As accepted: connected before the listener's initializer runs.
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            return (channel, loop)
        }
        let (channel, loop) = try accepted()
        try pipeline.configure(channel, loop: NIOLoopBound(loop, eventLoop: channel.eventLoop))
        _ = try channel.pipeline.syncOperations.context(handlerType: HTTP1Connection.self)
        #expect(loop.metrics.values[ProxyCounter.activeConnections.rawValue] == 1)

        // One connection per client: a second from the same address is refused.
        let (second, secondLoop) = try accepted()
        #expect(throws: ConnectionRefused.self) { try pipeline.configure(second, loop: NIOLoopBound(secondLoop, eventLoop: second.eventLoop)) }
        #expect(throws: (any Error).self) { try second.pipeline.syncOperations.context(handlerType: HTTP1Connection.self) }
        #expect(secondLoop.metrics.values[ProxyCounter.connectionsRefused.rawValue] == 1)

        try channel.close().wait()
        channel.embeddedEventLoop.run()
        #expect(loop.metrics.values[ProxyCounter.activeConnections.rawValue] == 0)
        // The slot is free again.
        let (third, thirdLoop) = try accepted()
        try pipeline.configure(third, loop: NIOLoopBound(thirdLoop, eventLoop: third.eventLoop))
        #expect(thirdLoop.metrics.values[ProxyCounter.activeConnections.rawValue] == 1)
    }

    @Test func connectionsPerClientAreCapped() async throws {
        try await withProxy(yaml: Self.edgeYAML(perClient: 2, perSecond: 1000)) { harness in
            let first = try harness.connect()
            let second = try harness.connect()
            #expect(await answered(first))
            #expect(await answered(second))
            let third = try harness.connect()
            #expect(await answered(third) == false)  // closed at once
            first.closeNow()
            #expect(await eventually { guard let fresh = try? harness.connect() else { return false }; return await self.answered(fresh) })
            #expect(await harness.plane.counters()[.connectionsRefused] >= 1)
        }
    }

    @Test func newConnectionsPerSecondAreCapped() async throws {
        try await withProxy(yaml: Self.edgeYAML(perClient: 100, perSecond: 1)) { harness in
            var served = 0
            for _ in 0..<5 where await answered(try harness.connect()) { served += 1 }
            #expect(served == 2)  // a burst of twice the rate, then refused
        }
    }

    @Test func bodiesOverTheListenerLimitGet413() async throws {
        try await withProxy(yaml: Self.edgeYAML(perClient: 100, perSecond: 1000)) { harness in
            let before = harness.upstreamRequestCount
            let declared = try harness.connect()
            try declared.send(request(["POST /x HTTP/1.1", "Host: example.com", "Content-Length: 11"]) + "12345678901")
            #expect(try await declared.readResponse().status == 413)
            let chunked = try harness.connect()
            try chunked.send(request(["POST /x HTTP/1.1", "Host: example.com", "Transfer-Encoding: chunked"]) + "6\r\n123456\r\n")
            try chunked.send("6\r\n123456\r\n0\r\n\r\n")
            #expect(try await chunked.readResponse().status == 413)
            #expect(harness.upstreamRequestCount <= before + 1)  // the chunked one may have started upstream
            let small = try harness.connect()
            try small.send(request(["POST /x HTTP/1.1", "Host: example.com", "Content-Length: 5"]) + "12345")
            #expect(try await small.readResponse().status == 200)
        }
    }

    @Test func aHeadThatDripsInGets408() async throws {
        try await withProxy(yaml: Self.edgeYAML(perClient: 100, perSecond: 1000)) { harness in
            let slow = try harness.connect()
            try slow.send("GET /x HTTP/1.1\r\nHost: exa")
            let answer = try await slow.readResponse(timeout: 10)
            #expect(answer.status == 408)
            #expect(answer.header("Connection") == "close")
            #expect(harness.upstreamRequestCount == 0)
            #expect(await harness.plane.counters()[.headerTimeouts] == 1)
            // A connection that sends nothing is not hurried by this timeout (the idle one
            // applies), nor is a kept-alive one waiting between requests.
            let quiet = try harness.connect()
            let kept = try harness.connect()
            #expect(await answered(kept))
            // Nor one that sent the empty line RFC 9112 §2.2 allows between requests, in two
            // reads (the pause only makes separate segments likely; either way it must pass).
            // The pause blocks this thread rather than suspending the task: a task resumed late
            // on a busy machine (a full test run) could leave the lone CR for longer than the
            // head timeout, and the 408 that earns would be right.
            let stray = try harness.connect()
            #expect(await answered(stray))
            try stray.send("\r")
            usleep(50_000)
            try stray.send("\n")
            try await Task.sleep(for: .milliseconds(1500))  // longer than requestHeaders: 1s
            #expect(await answered(quiet))
            #expect(await answered(kept))
            #expect(await answered(stray))
            #expect(await harness.plane.counters()[.headerTimeouts] == 1)
        }
    }

    /// A head that came behind pipelined requests, and stopped, is timed once they are answered.
    @Test func aHeadBehindPipelinedRequestsGets408() async throws {
        try await withProxy(yaml: Self.edgeYAML(perClient: 100, perSecond: 1000)) { harness in
            let connection = try harness.connect()
            try connection.send(
                request(["GET /1 HTTP/1.1", "Host: example.com"]) + request(["GET /2 HTTP/1.1", "Host: example.com"])
                    + "GET /3 HTTP/1.1\r\nHo")
            #expect(try await connection.readResponse().status == 200)
            #expect(try await connection.readResponse().status == 200)
            // Within requestHeaders (1s) of the second answer, not after `idle` (60s).
            #expect(try await connection.readResponse(timeout: 10).status == 408)
            #expect(harness.upstreamRequestCount == 2)
        }
    }
}
