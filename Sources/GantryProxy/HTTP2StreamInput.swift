import NIOCore
import NIOHTTP1

/// Hands an HTTP/2 stream's request parts (from NIO's HTTP/2 → HTTP/1 codec) to the stream's
/// ``DownstreamHandler``, whose pipeline input is bytes: on HTTP/1 connections it parses
/// requests itself. Every other event passes on through the pipeline.
final class HTTP2StreamInput: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart

    private let downstream: DownstreamHandler

    init(_ downstream: DownstreamHandler) {
        self.downstream = downstream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        downstream.received(unwrapInboundIn(data))
    }
}
