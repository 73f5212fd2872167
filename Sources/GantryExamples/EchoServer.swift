import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `gantry example echo`: an upstream that answers with what it received — method, path, raw
/// query, headers in order with duplicates, and the body — as JSON. Request headers steer it,
/// so tests and demos can make it misbehave on purpose:
///
/// - `X-Echo-Status: 503`: answer with that status.
/// - `X-Echo-Delay: 250ms`: wait before answering (the response head is delayed).
/// - `X-Echo-Bytes: 1048576`: answer with that many bytes instead of JSON, streamed with
///   backpressure; with `X-Echo-Chunked: 1`, chunked instead of Content-Length.
/// - `X-Echo-Close: 1`: close the connection without answering.
/// - `X-Echo-Header: Name: value`: add a response header (repeatable).
/// - `X-Echo-Set-Health: 503`: from now on `GET /healthz` answers that status (200 at start),
///   to fail and pass load-balancer health checks on purpose.
///
/// Bodies of any size are counted; the first 64 KiB are echoed back.
public final class EchoServer: Sendable {
    public let name: String
    private let received = Atomic<Int>(0)
    /// What `/healthz` answers.
    let health = Atomic<Int>(200)

    public init(name: String) {
        self.name = name
    }

    /// Requests received so far (heads decoded), so tests can prove a request never got here.
    public var requestCount: Int { received.load(ordering: .relaxed) }

    func countRequest() {
        received.add(1, ordering: .relaxed)
    }

    /// Binds and serves until the returned channel is closed.
    public func start(host: String, port: Int, group: any EventLoopGroup) async throws -> any Channel {
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler(server: self))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let echoedBodyLimit = 64 * 1024

    private let server: EchoServer
    private var serverName: String { server.name }
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var bodyBytes = 0
    private var streamer: ByteStreamer?

    init(server: EchoServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            server.countRequest()
            self.head = head
            body = []
            bodyBytes = 0
        case .body(var buffer):
            bodyBytes += buffer.readableBytes
            let room = Self.echoedBodyLimit - body.count
            if room > 0, let bytes = buffer.readBytes(length: min(room, buffer.readableBytes)) { body.append(contentsOf: bytes) }
        case .end:
            guard let head else { return }
            respond(to: head, context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { streamer?.resume(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let controls = head.headers
        if controls.first(name: "x-echo-close") != nil {
            context.close(promise: nil)
            return
        }
        if let health = controls.first(name: "x-echo-set-health").flatMap(Int.init) { server.health.store(health, ordering: .relaxed) }
        let healthz = head.uri == "/healthz" ? HTTPResponseStatus(statusCode: server.health.load(ordering: .relaxed)) : .ok
        let status = controls.first(name: "x-echo-status").flatMap(Int.init).map { HTTPResponseStatus(statusCode: $0) } ?? healthz
        var headers = HTTPHeaders()
        headers.add(name: "x-echo-server", value: serverName)
        for extra in controls[canonicalForm: "x-echo-header"] {
            guard let colon = extra.firstIndex(of: ":") else { continue }
            headers.add(name: String(extra[..<colon]), value: String(extra[extra.index(after: colon)...].drop(while: { $0 == " " })))
        }
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        let delay = controls.first(name: "x-echo-delay").flatMap(Self.parseMilliseconds) ?? 0
        let send = { [self] in
            if let count = controls.first(name: "x-echo-bytes").flatMap(Int.init) {
                let chunked = controls.first(name: "x-echo-chunked") == "1"
                if !chunked { headers.add(name: "content-length", value: String(count)) }
                headers.add(name: "content-type", value: "application/octet-stream")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
                streamer = ByteStreamer(remaining: head.method == .HEAD ? 0 : count, keepAlive: head.isKeepAlive)
                streamer?.resume(context: context)
                return
            }
            let json = Self.describe(head: head, body: body, bodyBytes: bodyBytes, server: serverName)
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "content-length", value: String(json.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            if status != .noContent, status != .notModified {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: json)))), promise: nil)
            }
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
        if delay > 0 {
            context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delay))) { send() }
        } else {
            send()
        }
    }

    static func parseMilliseconds(_ text: String) -> Int? {
        if text.hasSuffix("ms") { return Int(text.dropLast(2)) }
        if text.hasSuffix("s"), let seconds = Double(text.dropLast()) { return Int(seconds * 1000) }
        return Int(text)
    }

    static func describe(head: HTTPRequestHead, body: [UInt8], bodyBytes: Int, server: String) -> [UInt8] {
        let uri = head.uri
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        let query = uri.contains("?") ? String(uri[uri.index(after: uri.firstIndex(of: "?")!)...]) : nil
        let headers = head.headers.map { [$0.name, $0.value] }
        var object: [String: Any] = [
            "server": server,
            "method": head.method.rawValue,
            "path": path,
            "query": query ?? NSNull(),
            "version": "HTTP/\(head.version.major).\(head.version.minor)",
            "headers": headers,
            "bodyBytes": bodyBytes,
        ]
        if let text = String(validating: body, as: UTF8.self) {
            object["body"] = text
        } else {
            object["bodyBase64"] = Data(body).base64EncodedString()
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Array(data) + [UInt8(ascii: "\n")]
    }
}

/// Streams a number of bytes, writing only while the channel is writable.
final class ByteStreamer {
    private var remaining: Int
    private let keepAlive: Bool
    private var finished = false
    private static let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 64 * 1024)

    init(remaining: Int, keepAlive: Bool) {
        self.remaining = remaining
        self.keepAlive = keepAlive
    }

    func resume(context: ChannelHandlerContext) {
        guard !finished else { return }
        while remaining > 0, context.channel.isWritable {
            let size = min(remaining, Self.chunk.count)
            remaining -= size
            let buffer = context.channel.allocator.buffer(bytes: Self.chunk[0..<size])
            context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(buffer))), promise: nil)
        }
        context.flush()
        // The flush can make the channel writable again and call `resume` from inside it; that
        // inner call may already have written the rest and the end.
        guard remaining == 0, !finished else { return }
        finished = true
        let keepAlive = self.keepAlive
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }
}
