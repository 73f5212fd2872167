import GantryConfig
import GantryCore
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import GantryProxy

/// The exchange on an embedded event loop, one step at a time: a client connection and its
/// upstream connections are in-memory channels the test writes to and reads from, so the order
/// of the phases, pipelining, retries and backpressure are seen exactly, without timing.
@Suite struct ExchangeTests {
    /// What happened, in order: connects, and the first line of everything the client was sent.
    final class Events {
        var entries: [String] = []
    }

    /// Hands out in-memory upstream connections; connects to a port in `refused` fail.
    final class EmbeddedConnector: UpstreamConnector {
        let loop: EmbeddedEventLoop
        let events: Events
        var refused: Set<Int> = []
        private(set) var connections: [(port: Int, channel: EmbeddedChannel, reads: ReadCounter)] = []

        init(loop: EmbeddedEventLoop, events: Events) {
            self.loop = loop
            self.events = events
        }

        func connect(
            _ handler: UpstreamHandler, to address: SocketAddress, tls: UpstreamSecurity?, timeout: TimeAmount, on eventLoop: any EventLoop
        ) -> EventLoopFuture<Void> {
            let port = address.port ?? 0
            events.entries.append("connect \(port)")
            if refused.contains(port) { return loop.makeFailedFuture(IOError(errnoCode: ECONNREFUSED, reason: "connect")) }
            let channel = EmbeddedChannel(loop: loop)
            let reads = ReadCounter()
            try! channel.pipeline.syncOperations.addHandlers([reads, handler])
            try! channel.connect(to: address).wait()
            connections.append((port, channel, reads))
            return loop.makeSucceededFuture(())
        }
    }

    /// Counts the read requests that reach the upstream socket: what backpressure holds back.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0

        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    /// Notes the first line of each write to the client.
    final class ClientRecorder: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        let events: Events

        init(events: Events) {
            self.events = events
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let text = String(buffer: unwrapOutboundIn(data))
            if text.hasPrefix("HTTP/"), let line = text.components(separatedBy: "\r\n").first { events.entries.append(line) }
            context.write(data, promise: promise)
        }
    }

    struct Proxy {
        let loop = EmbeddedEventLoop()
        let events = Events()
        let context: LoopContext
        let connector: EmbeddedConnector
        let client: EmbeddedChannel

        init(_ gateway: String, endpoints: [Int] = [1, 2], clientAddress: String = "10.0.0.1") throws {
            let yaml = """
                loadBalancer: {listeners: [{name: http, port: 8080}]}
                accessLog: {enabled: false}
                gateway:
                \(gateway)
                services:
                  - {name: app, endpoints: [\(endpoints.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]}
                """
            let snapshot = try ConfigLoader.load(yaml: yaml, file: "test.yaml", coreCount: 1).get().snapshot
            connector = EmbeddedConnector(loop: loop, events: events)
            context = LoopContext(
                eventLoop: loop, state: .first(for: snapshot, registry: EndpointRegistry()), accessLog: nil,
                connectionLimiter: ConnectionLimiter(limits: snapshot.limits), connector: connector)
            client = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandlers([
                ClientRecorder(events: events), HTTP1Connection(loop: context, listener: snapshot.listeners[0]),
            ])
            try client.connect(to: SocketAddress(ipAddress: clientAddress, port: 40000)).wait()
        }

        func send(_ text: String) throws {
            try client.writeInbound(ByteBuffer(string: text))
        }

        /// Everything the client has been sent so far.
        func received() throws -> String {
            var text = ""
            while let buffer = try client.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }

        /// Everything upstream connection `index` has been sent so far.
        func sent(on index: Int) throws -> String {
            var text = ""
            while let buffer = try connector.connections[index].channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
            return text
        }

        func respond(on index: Int, _ text: String) throws {
            try connector.connections[index].channel.writeInbound(ByteBuffer(string: text))
        }
    }

    static let ok = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    /// Admission, then the policies, then `100 Continue`, then the connection: a request the
    /// policies refuse is answered without a `100 Continue` and never connects.
    @Test func thePhasesRunInTheirOrder() throws {
        let gateway = """
              policies: [{name: inside, ipFilter: {allow: [10.0.0.0/8]}}]
              routes: [{path: /, service: app, policies: [inside]}]
            """
        let allowed = try Proxy(gateway, endpoints: [1])
        try allowed.send("POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        #expect(allowed.events.entries == ["HTTP/1.1 100 Continue", "connect 1"])
        try allowed.send("body")
        #expect(try allowed.sent(on: 0).hasSuffix("\r\n\r\nbody"))
        try allowed.respond(on: 0, Self.ok)
        #expect(allowed.events.entries == ["HTTP/1.1 100 Continue", "connect 1", "HTTP/1.1 200 OK"])

        let refused = try Proxy(gateway, endpoints: [1], clientAddress: "192.0.2.1")
        try refused.send("POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        #expect(refused.events.entries == ["HTTP/1.1 403 Forbidden"])
        #expect(refused.connector.connections.isEmpty)
    }

    /// Two requests in one read: the second goes upstream only once the first response has
    /// ended, on the same pooled connection, and the responses come back in order.
    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let proxy = try Proxy("  routes: [{path: /, service: app}]", endpoints: [1])
        try proxy.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = try proxy.sent(on: 0)
        #expect(first.hasPrefix("GET /first "))
        #expect(!first.contains("/second"))
        try proxy.respond(on: 0, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirst")
        #expect(try proxy.sent(on: 0).hasPrefix("GET /second "))
        #expect(proxy.connector.connections.count == 1)
        try proxy.respond(on: 0, "HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecond")
        let received = try proxy.received()
        let firstAt = try #require(received.range(of: "first"))
        let secondAt = try #require(received.range(of: "second"))
        #expect(firstAt.lowerBound < secondAt.lowerBound)
    }

    /// A queued request gantry answers itself, between two that go upstream: each is answered
    /// once, in order, and the connection carries on.
    @Test func aLocalAnswerInAPipelineKeepsItsTurn() throws {
        let proxy = try Proxy("  routes: [{path: /app, service: app}]", endpoints: [1])
        try proxy.send(
            "GET /app/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /missing HTTP/1.1\r\nHost: a\r\n\r\nGET /app/3 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try proxy.sent(on: 0).hasPrefix("GET /app/1 "))
        try proxy.respond(on: 0, Self.ok)
        #expect(try proxy.sent(on: 0).hasPrefix("GET /app/3 "))
        try proxy.respond(on: 0, Self.ok)
        #expect(proxy.events.entries == ["connect 1", "HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"])
        #expect(proxy.client.isActive)
    }

    /// A chunked body that grows past its limit after the response has begun: the connection is
    /// cut, since the response can no longer end properly, and nothing more goes upstream.
    @Test func aBodyOverItsLimitAfterTheResponseBeganCutsTheConnection() throws {
        let gateway = """
              policies: [{name: small, validate: {maxBodySize: 8}}]
              routes: [{path: /, service: app, policies: [small]}]
            """
        let proxy = try Proxy(gateway, endpoints: [1])
        try proxy.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
        #expect(try proxy.sent(on: 0).hasSuffix("abcd\r\n"))
        try proxy.respond(on: 0, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n01234")
        #expect(try proxy.received().hasPrefix("HTTP/1.1 200 OK"))
        try proxy.send("8\r\nefghijkl\r\n")
        #expect(!proxy.client.isActive)
        #expect(!proxy.connector.connections[0].channel.isActive)
        #expect(try !proxy.sent(on: 0).contains("efgh"))
    }

    /// A reset before the response head, and a refused connect: each retried on the other
    /// endpoint, never the one already tried.
    @Test func failedAttemptsAreRetriedOnAnotherEndpoint() throws {
        let proxy = try Proxy("  routes: [{path: /, service: app}]")
        try proxy.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        let firstPort = proxy.connector.connections[0].port
        #expect(try proxy.sent(on: 0).hasPrefix("GET / "))
        try proxy.connector.connections[0].channel.close().wait()
        #expect(proxy.connector.connections.count == 2)
        let secondPort = proxy.connector.connections[1].port
        #expect(secondPort != firstPort)
        #expect(try proxy.sent(on: 1).hasPrefix("GET / "))
        try proxy.respond(on: 1, Self.ok)
        #expect(try proxy.received().hasPrefix("HTTP/1.1 200 OK"))

        let refusing = try Proxy("  routes: [{path: /, service: app}]")
        refusing.connector.refused = [1]
        try refusing.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        try refusing.respond(on: 0, Self.ok)
        #expect(refusing.connector.connections.map(\.port) == [2])
        #expect(refusing.events.entries.filter { $0.hasPrefix("connect") }.count <= 2)
        #expect(try refusing.received().hasPrefix("HTTP/1.1 200 OK"))
    }

    /// A client that cannot take more holds back reading from the upstream; once it can, the
    /// upstream is read again.
    @Test func aSlowClientHoldsBackTheUpstream() throws {
        let proxy = try Proxy("  routes: [{path: /, service: app}]", endpoints: [1])
        try proxy.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        let upstream = proxy.connector.connections[0]
        proxy.client.isWritable = false
        proxy.client.pipeline.fireChannelWritabilityChanged()
        try proxy.respond(on: 0, "HTTP/1.1 200 OK\r\ncontent-length: 20\r\n\r\n0123456789")
        let before = upstream.reads.reads
        upstream.channel.read()
        #expect(upstream.reads.reads == before)
        proxy.client.isWritable = true
        proxy.client.pipeline.fireChannelWritabilityChanged()
        #expect(upstream.reads.reads == before + 1)
        try proxy.respond(on: 0, "0123456789")
        #expect(try proxy.received().hasSuffix("01234567890123456789"))
    }
}
