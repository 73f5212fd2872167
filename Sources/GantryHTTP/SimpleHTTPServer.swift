import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small HTTP/1.1 server for the control plane and the example pods (not the data plane):
/// a handler from request to response, async, one task per connection. When `until` returns
/// it stops accepting, lets requests in flight finish, and returns, which is what a pod
/// should do on SIGTERM.
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
    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    private let handler: Handler

    public init(handler: @escaping Handler) {
        self.handler = handler
    }

    /// Serves on `host:port` until `stop` returns, then drains. `ready` receives the bound port.
    public func run(host: String, port: Int, ready: @Sendable (Int) -> Void, until stop: @escaping @Sendable () async -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    return try Connection(wrappingChannelSynchronously: channel)
                }
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
                for try await connection in inbound {
                    group.addTask { await Self.serve(connection, handler: handler, connections: connections) }
                }
            }
        }
    }

    /// Open connections and whether each is in the middle of a request.
    private final class Connections: Sendable {
        private let state = Mutex<(draining: Bool, idle: [ObjectIdentifier: any Channel])>((false, [:]))

        /// Marks a connection idle; false when the server drains and it should close instead.
        func idle(_ channel: any Channel) -> Bool {
            state.withLock { state in
                if state.draining { return false }
                state.idle[ObjectIdentifier(channel)] = channel
                return true
            }
        }

        func busy(_ channel: any Channel) {
            _ = state.withLock { $0.idle.removeValue(forKey: ObjectIdentifier(channel)) }
        }

        func drain() {
            let idle = state.withLock { state in
                state.draining = true
                defer { state.idle = [:] }
                return Array(state.idle.values)
            }
            for channel in idle { channel.close(promise: nil) }
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
