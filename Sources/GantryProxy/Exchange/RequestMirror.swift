import GantryCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// A copy of one request for a route's mirror: the head as it goes upstream (with the Host
/// suffixed `-shadow`, as Envoy marks shadow traffic, and `Connection: close`) and up to
/// ``maxBody`` bytes of body, sent on a connection of its own once the request has ended. The
/// answer is read and dropped, and nothing about it reaches the client or delays it: a shadow
/// that is slow, down or broken changes nothing but the copy. A body over the limit is not
/// copied at all (a truncated copy would be a different request).
final class RequestMirror {
    static let maxBody = 64 * 1024
    /// How long a copy may take, answer included, before its connection is closed.
    static let timeout = TimeAmount.seconds(30)

    private let head: HTTPRequestHead
    private var body: ByteBuffer?
    private(set) var overflowed = false

    init(head: HTTPRequestHead) {
        var head = head
        if let host = head.headers.first(name: "host") {
            // The authority's host gets the suffix, its port stays: app.example.com:8080 → app.example.com-shadow:8080.
            let parts = host.split(separator: ":", maxSplits: 1)
            head.headers.replaceOrAdd(name: "host", value: "\(parts[0])-shadow" + (parts.count > 1 ? ":\(parts[1])" : ""))
        }
        head.headers.remove(name: "connection")
        head.headers.add(name: "connection", value: "close")
        self.head = head
    }

    func append(_ part: ByteBuffer) {
        guard !overflowed else { return }
        if (body?.readableBytes ?? 0) + part.readableBytes > Self.maxBody {
            overflowed = true
            body = nil
            return
        }
        if body == nil { body = ByteBuffer() }
        body!.writeImmutableBuffer(part)
    }

    /// Sends the copy to `endpoint`; a failure to connect or to answer is the shadow's affair.
    func send(to endpoint: EndpointAddress, on eventLoop: any EventLoop) {
        guard !overflowed else { return }
        var head = self.head
        head.headers.remove(name: "transfer-encoding")
        if let body, body.readableBytes > 0 || head.headers.contains(name: "content-length") {
            head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        }
        var writer = HTTP1MessageWriter()
        writer.writeHead(head, allocator: ByteBufferAllocator())
        var bytes = writer.take() ?? ByteBuffer()
        if let body { bytes.writeImmutableBuffer(body) }
        let payload = bytes
        ClientBootstrap(group: eventLoop)
            .connectTimeout(.seconds(1))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AnswerDropper()) }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenSuccess { channel in
                channel.writeAndFlush(payload, promise: nil)
                channel.eventLoop.scheduleTask(in: Self.timeout) { channel.close(promise: nil) }
            }
    }

    /// Reads the shadow's answer and drops it; the shadow closes after it (`Connection: close`).
    private final class AnswerDropper: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
