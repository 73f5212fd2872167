import NIOCore

/// On a plain listener that accepts h2c, tells HTTP/2 with prior knowledge (RFC 9113 §3.3) from
/// HTTP/1.1 by the first bytes, sets the pipeline up for the one it is, and steps aside. Written
/// here because NIO's helpers only negotiate by ALPN or by the HTTP/1.1 Upgrade dance.
final class HTTP2PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private var buffered: ByteBuffer?
    private let configure: (Bool, any Channel) throws -> Void

    init(configure: @escaping (Bool, any Channel) throws -> Void) {
        self.configure = configure
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        let bytes = buffered!.readableBytesView
        let compared = min(bytes.count, Self.preface.count)
        if !bytes.prefix(compared).elementsEqual(Self.preface.prefix(compared)) {
            decide(http2: false, context: context)
        } else if bytes.count >= Self.preface.count {
            decide(http2: true, context: context)
        }
        // Otherwise a prefix of the preface: wait for more bytes.
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    private func decide(http2: Bool, context: ChannelHandlerContext) {
        do {
            try configure(http2, context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
