import Foundation
import GantryHandover
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// A small HTTP/1.1 server for the control plane and the example pods (not the data plane):
/// a handler from request to response, async, one task per connection, and WebSockets at the
/// paths given handlers for them (a connection's first request may switch, as NIO's upgrader
/// allows). When `until` returns it stops accepting, lets requests in flight finish, closes its
/// WebSockets with 1001 (going away), and returns, which is what a pod should do on SIGTERM.
public struct SimpleHTTPServer: Sendable {
    public struct Request: Sendable {
        public let method: String
        public let path: String
        public let query: [String: String]
        public let headers: [(name: String, value: String)]
        public let body: Data

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: Data

        public init(status: Int = 200, headers: [(String, String)] = [], body: Data = Data()) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// A JSON response of any encodable value.
        public static func json(_ value: some Encodable, status: Int = 200) -> Response {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = (try? encoder.encode(value)) ?? Data("{}".utf8)
            return Response(status: status, headers: [("Content-Type", "application/json")], body: body)
        }

        public static func error(_ status: Int, _ message: String) -> Response {
            json(["error": message], status: status)
        }
    }

    public typealias Handler = @Sendable (Request) async -> Response
    /// A WebSocket's life: the handshake's request, the socket, and the text messages the
    /// client sends. The socket closes when it returns.
    public typealias WebSocketHandler = @Sendable (Request, SimpleWebSocket, AsyncStream<String>) async -> Void
    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// What a new connection turned out to be once its first request head came.
    private enum Accepted: Sendable {
        case http(Connection)
        case webSocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, Request, WebSocketHandler)
    }

    private let handler: Handler
    private let webSockets: [String: WebSocketHandler]

    /// - Parameter webSockets: handlers by exact path.
    public init(handler: @escaping Handler, webSockets: [String: WebSocketHandler] = [:]) {
        self.handler = handler
        self.webSockets = webSockets
    }

    /// Serves on `host:port` until `stop` returns, then drains. `ready` receives the bound port.
    /// - Parameter handover: the socket's name in ``Handover``, for a server `gantry up
    ///   --takeover` hands from one gantry to the next (the admin API).
    public func run(
        host: String, port: Int, handover: String? = nil, ready: @Sendable (Int) -> Void, until stop: @escaping @Sendable () async -> Void
    ) async throws {
        let backlog: Int32 = 1024
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: backlog)
            // As gantry's listeners: NIO's default of 4 accepts per wake-up leaves a burst of new
            // connections (gantry's pool filling toward a pod that just became ready) waiting.
            .serverChannelOption(.maxMessagesPerRead, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<EventLoopFuture<Accepted>> = { [webSockets] channel in
            channel.eventLoop.makeCompletedFuture { try Self.configure(channel, webSockets: webSockets) }
        }
        let server: NIOAsyncChannel<EventLoopFuture<Accepted>, Never>
        if let handover {
            let socket = try Handover.shared.listeningSocket(named: handover, host: host, port: port, kind: .stream, backlog: backlog)
            do {
                server = try await bootstrap.serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try Handover.listen(socket.descriptor, backlog: backlog) }  // NIO set its own
                }
                .bind(socket.descriptor, childChannelInitializer: initializer)
            } catch {
                Handover.shared.discard(socket)
                throw error
            }
            server.channel.closeFuture.whenComplete { _ in Handover.shared.forget(socket.token) }
        } else {
            server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
        }
        ready(server.channel.localAddress?.port ?? port)
        let handler = self.handler
        let connections = Connections()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                await stop()
                // Stop accepting and close idle keep-alive connections; the others close after
                // the response in flight.
                try? await server.channel.close()
                connections.drain()
            }
            try? await server.executeThenClose { inbound in
                for try await accepted in inbound {
                    group.addTask {
                        switch try? await accepted.get() {
                        case .http(let connection):
                            await Self.serve(connection, handler: handler, connections: connections)
                        case .webSocket(let channel, let request, let session):
                            await SimpleWebSocket.serve(channel, request: request, handler: session) { connections.opened($0) }
                        case nil:
                            break
                        }
                    }
                }
            }
        }
    }

    /// HTTP/1.1, switching to a WebSocket when the first request asks for one at a path that
    /// has a handler.
    private static func configure(_ channel: any Channel, webSockets: [String: WebSocketHandler]) throws -> EventLoopFuture<Accepted> {
        let upgrader = NIOTypedWebSocketServerUpgrader<Accepted>(
            maxFrameSize: 1 << 20,
            shouldUpgrade: { channel, head in
                channel.eventLoop.makeSucceededFuture(webSockets[Self.path(of: head.uri)] == nil ? nil : HTTPHeaders())
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    let socket = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel)
                    return .webSocket(socket, Self.request(head, body: ByteBuffer()), webSockets[Self.path(of: head.uri)]!)
                }
            })
        let upgrade = NIOTypedHTTPServerUpgradeConfiguration<Accepted>(
            upgraders: webSockets.isEmpty ? [] : [upgrader],
            notUpgradingCompletionHandler: { channel in
                channel.eventLoop.makeCompletedFuture { .http(try Connection(wrappingChannelSynchronously: channel)) }
            })
        return try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: .init(upgradeConfiguration: upgrade))
    }

    private static func path(of uri: String) -> String {
        String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    /// Open connections and whether each is in the middle of a request, and open WebSockets.
    private final class Connections: Sendable {
        private let state = NIOLockedValueBox<(draining: Bool, idle: [ObjectIdentifier: any Channel])>((false, [:]))
        private let sockets = NIOLockedValueBox<(next: Int, open: [Int: SimpleWebSocket])>((0, [:]))

        /// Keeps an open WebSocket for the drain; returns what forgets it, or nil when the
        /// server is draining already.
        func opened(_ socket: SimpleWebSocket) -> (() -> Void)? {
            guard !state.withLockedValue({ $0.draining }) else { return nil }
            let id = sockets.withLockedValue { sockets in
                sockets.next += 1
                sockets.open[sockets.next] = socket
                return sockets.next
            }
            return { [self] in _ = sockets.withLockedValue { $0.open.removeValue(forKey: id) } }
        }

        /// Marks a connection idle; false when the server drains and it should close instead.
        func idle(_ channel: any Channel) -> Bool {
            state.withLockedValue { state in
                if state.draining { return false }
                state.idle[ObjectIdentifier(channel)] = channel
                return true
            }
        }

        func busy(_ channel: any Channel) {
            _ = state.withLockedValue { $0.idle.removeValue(forKey: ObjectIdentifier(channel)) }
        }

        func drain() {
            let idle = state.withLockedValue { state in
                state.draining = true
                defer { state.idle = [:] }
                return Array(state.idle.values)
            }
            for channel in idle { channel.close(promise: nil) }
            let open = sockets.withLockedValue { $0.open.values }
            for socket in open { Task { await socket.close(code: .goingAway) } }
        }
    }

    private static func serve(_ connection: Connection, handler: Handler, connections: Connections) async {
        let channel = connection.channel
        guard connections.idle(channel) else {
            try? await channel.close()
            return
        }
        defer { connections.busy(channel) }
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let received):
                    connections.busy(channel)
                    head = received
                    body.clear()
                case .body(var chunk):
                    body.writeBuffer(&chunk)
                case .end:
                    guard let request = head else { continue }
                    let response = await handler(Self.request(request, body: body))
                    var headers = HTTPHeaders(response.headers)
                    headers.replaceOrAdd(name: "Content-Length", value: "\(response.body.count)")
                    if !request.isKeepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
                    try await outbound.write(
                        .head(HTTPResponseHead(version: request.version, status: .init(statusCode: response.status), headers: headers)))
                    if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body)))) }
                    try await outbound.write(.end(nil))
                    if !request.isKeepAlive || !connections.idle(channel) { return }
                }
            }
        }
    }

    private static func request(_ head: HTTPRequestHead, body: ByteBuffer) -> Request {
        let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                query[name] = kv.count == 2 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : ""
            }
        }
        return Request(
            method: head.method.rawValue, path: String(parts[0]), query: query,
            headers: head.headers.map { ($0.name, $0.value) }, body: Data(body.readableBytesView))
    }
}
