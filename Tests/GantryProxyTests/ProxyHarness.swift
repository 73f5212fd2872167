import GantryConfig
import GantryExamples
import GantryTestSupport
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

@testable import GantryProxy

/// A data plane on real sockets in front of real echo upstreams, all on loopback with ports the
/// system picks.
final class ProxyHarness: Sendable {
    let group: MultiThreadedEventLoopGroup
    let upstreams: [EchoServer]
    let upstreamChannels: [any Channel]
    let plane: DataPlane
    let port: Int
    /// Every listener's port, in the file's order.
    let ports: [Int]

    var upstreamPorts: [Int] { upstreamChannels.map { $0.localAddress!.port! } }

    /// - Parameter yaml: the file, given the upstream ports (`127.0.0.1:PORT` each).
    static func start(
        upstreams count: Int = 2, accessLog: AccessLogSink? = nil, yaml: ([Int]) -> String = ProxyHarness.defaultYAML
    ) async throws -> ProxyHarness {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var servers: [EchoServer] = []
        var channels: [any Channel] = []
        for index in 0..<count {
            let server = EchoServer(name: "echo-\(index)")
            channels.append(try await server.start(host: "127.0.0.1", port: 0, group: group))
            servers.append(server)
        }
        let ports = channels.map { $0.localAddress!.port! }
        let snapshot = try ConfigLoader.load(yaml: yaml(ports), file: "test.yaml", coreCount: 2).get().snapshot
        let plane = DataPlane(snapshot: snapshot, group: group, accessLog: accessLog, logger: Logger(label: "test"))
        let bound = try await plane.start()
        return ProxyHarness(group: group, upstreams: servers, upstreamChannels: channels, plane: plane, ports: bound.map(\.port))
    }

    private init(group: MultiThreadedEventLoopGroup, upstreams: [EchoServer], upstreamChannels: [any Channel], plane: DataPlane, ports: [Int]) {
        self.group = group
        self.upstreams = upstreams
        self.upstreamChannels = upstreamChannels
        self.plane = plane
        self.port = ports[0]
        self.ports = ports
    }

    static func defaultYAML(_ ports: [Int]) -> String {
        """
        loadBalancer:
          listeners: [{name: http, port: 0}]
        gateway:
          routes:
            - {path: /, service: app}
        services:
          - name: app
            endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
        """
    }

    func connect(port: Int? = nil) throws -> RawHTTPConnection {
        try RawHTTPConnection(port: port ?? self.port)
    }

    /// One request on a fresh connection.
    func get(_ path: String, headers: [String] = [], host: String = "example.com", port: Int? = nil) async throws -> RawResponse {
        let connection = try connect(port: port)
        try connection.send(request(["GET \(path) HTTP/1.1", "Host: \(host)"] + headers))
        return try await connection.readResponse()
    }

    var upstreamRequestCount: Int { upstreams.reduce(0) { $0 + $1.requestCount } }

    func stop() async {
        await plane.drain(gracePeriod: .zero)
        for channel in upstreamChannels { try? await channel.close() }
        try? await group.shutdownGracefully()
    }
}

/// A loopback port with nothing listening on it.
func closedPort(group: any EventLoopGroup) async throws -> Int {
    let channel = try await ServerBootstrap(group: group).bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress!.port!
    try await channel.close()
    return port
}

/// Runs a test against a fresh harness and always stops it, pass or fail.
func withProxy(
    upstreams: Int = 2, accessLog: AccessLogSink? = nil, yaml: ([Int]) -> String = ProxyHarness.defaultYAML,
    _ body: (ProxyHarness) async throws -> Void
) async throws {
    let harness = try await ProxyHarness.start(upstreams: upstreams, accessLog: accessLog, yaml: yaml)
    do {
        try await body(harness)
    } catch {
        await harness.stop()
        throw error
    }
    await harness.stop()
}

func request(_ lines: [String]) -> String {
    lines.joined(separator: "\r\n") + "\r\n\r\n"
}

/// An upstream that misbehaves on purpose: closes the connection as soon as a request head
/// arrives, or reads requests and never answers, or answers with exactly the bytes given. It
/// counts requests and closed connections.
final class MisbehavingUpstream: Sendable {
    enum Mode: Sendable {
        case resetOnRequest
        case neverAnswer
        case garbage
        /// Writes these bytes, in the given pieces, then closes the connection.
        case replyThenClose([String])
        /// Writes these bytes as one write for every request, keeping the connection open.
        case reply(String)
    }

    let channel: any Channel
    private let counters: Counters

    final class Counters: Sendable {
        let requests = Atomic<Int>(0)
        let closed = Atomic<Int>(0)
        let received = NIOLockedValueBox<[UInt8]>([])
    }

    var port: Int { channel.localAddress!.port! }
    var requests: Int { counters.requests.load(ordering: .relaxed) }
    var closedConnections: Int { counters.closed.load(ordering: .relaxed) }
    /// Every byte the upstream has read, on all its connections.
    var received: String { counters.received.withLockedValue { String(decoding: $0, as: UTF8.self) } }

    init(mode: Mode, group: any EventLoopGroup) async throws {
        let counters = Counters()
        self.counters = counters
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(mode: mode, counters: counters))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let mode: Mode
        let counters: Counters
        var seen: [UInt8] = []

        init(mode: Mode, counters: Counters) {
            self.mode = mode
            self.counters = counters
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            counters.received.withLockedValue { $0 += bytes }
            seen += bytes
            let heads = String(decoding: seen, as: UTF8.self).components(separatedBy: "\r\n\r\n").count - 1
            guard heads > 0 else { return }
            seen.removeAll()
            counters.requests.add(heads, ordering: .relaxed)
            switch mode {
            case .resetOnRequest:
                context.close(promise: nil)
            case .garbage:
                context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: "NOT HTTP AT ALL\r\n\r\n")), promise: nil)
            case .neverAnswer:
                break
            case .reply(let bytes):
                for _ in 0..<heads { context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: bytes)), promise: nil) }
            case .replyThenClose(let pieces):
                for piece in pieces { context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: piece)), promise: nil) }
                context.close(promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            counters.closed.add(1, ordering: .relaxed)
        }
    }
}

/// A listening socket whose accept queue is full, so new connections hang in SYN_SENT until the
/// client gives up: a connect timeout on loopback, without depending on the network.
final class FullBacklogListener {
    let port: Int
    private var descriptors: [Int32] = []

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(listener, 0)
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: bound.sin_port))
        descriptors.append(listener)
        // Fill the accept queue (a backlog of 0 still admits one or two connections).
        for _ in 0..<3 {
            let filler = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(filler, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            descriptors.append(filler)
        }
    }

    deinit {
        for descriptor in descriptors { close(descriptor) }
    }
}

/// An upstream that holds every request it reads until the test answers or resets it: a
/// request in flight for exactly as long as a test needs, with no timing involved.
final class HeldUpstream: Sendable {
    let channel: any Channel
    private final class Held: Sendable {
        /// Connections with a request waiting, oldest first.
        let connections = NIOLockedValueBox<[any Channel]>([])
    }

    private let held = Held()

    var port: Int { channel.localAddress!.port! }
    var heldCount: Int { held.connections.withLockedValue { $0.count } }

    init(group: any EventLoopGroup) async throws {
        let held = self.held
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler { held.connections.withLockedValue { $0.append(channel) } })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// Answers the oldest held request with `status` and `body`, and closes its connection.
    func answer(status: Int = 200, body: String = "") {
        guard let connection = held.connections.withLockedValue({ $0.isEmpty ? nil : $0.removeFirst() }) else { return }
        let response = "HTTP/1.1 \(status) OK\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\nconnection: close\r\n\r\n\(body)"
        connection.writeAndFlush(ByteBuffer(string: response)).whenComplete { _ in connection.close(promise: nil) }
    }

    /// Closes the oldest held request's connection without an answer.
    func reset() {
        held.connections.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() }?.close(promise: nil)
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        private let onRequest: () -> Void
        private var seen = ""

        init(onRequest: @escaping () -> Void) {
            self.onRequest = onRequest
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            seen += String(buffer: unwrapInboundIn(data))
            if seen.contains("\r\n\r\n") {
                seen = ""
                onRequest()
            }
        }
    }
}
