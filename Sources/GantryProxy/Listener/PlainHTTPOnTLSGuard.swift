import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1

/// On a TLS listener, tells a TLS connection from plain HTTP sent to it by the first byte, as
/// nginx does: a TLS record starts with 22 (a handshake), an HTTP/1 request with the first
/// letter of its method. Plain HTTP gets a 400 saying what happened, in plain HTTP, and the
/// connection closes, rather than a TLS alert the client cannot read. Anything else goes to the
/// TLS handler, which refuses it as TLS.
final class PlainHTTPOnTLSGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private unowned let loop: LoopContext

    init(loop: LoopContext) {
        self.loop = loop
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return }
        guard first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z") else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        loop.metrics.add(.malformedRequests)
        let port = context.channel.localAddress?.port.map { ":\($0)" } ?? ""
        let response = LocalResponse.badRequest("a plain HTTP request was sent to an HTTPS port: use https://…\(port)")
        let id = loop.drawRandom { RequestIdentifier.random(using: &$0) }
        let body = response.body(requestID: id, allocator: context.channel.allocator)
        let head = response.head(version: .http1_1, requestID: id, bodyLength: body.readableBytes, close: true)
        var out = context.channel.allocator.buffer(capacity: 256 + body.readableBytes)
        out.writeString("HTTP/1.1 \(head.status.code) \(head.status.reasonPhrase)\r\n")
        for (name, value) in head.headers { out.writeString("\(name): \(value)\r\n") }
        out.writeString("\r\n")
        out.writeImmutableBuffer(body)
        context.writeAndFlush(wrapOutboundOut(out)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}
