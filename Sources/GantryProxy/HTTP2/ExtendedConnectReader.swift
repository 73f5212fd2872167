import NIOCore
import NIOHTTP2

/// Reads a stream's request HEADERS for RFC 8441's extended CONNECT (`:method CONNECT` with
/// `:protocol`), which NIO's HTTP/2 → HTTP/1 codec leaves out of the head it makes, and tells
/// the stream which protocol its client asks for. Everything passes on unchanged.
final class ExtendedConnectReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    /// The stream's handler, later in the same pipeline: both live and go with the stream.
    private let stream: HTTP2Stream

    init(stream: HTTP2Stream) {
        self.stream = stream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .headers(let headers) = unwrapInboundIn(data), headers.headers.first(name: ":method") == "CONNECT",
            let wanted = headers.headers.first(name: ":protocol")
        {
            stream.extendedConnect = wanted.lowercased()
        }
        context.fireChannelRead(data)
    }
}
