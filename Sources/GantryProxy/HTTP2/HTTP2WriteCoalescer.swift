import NIOCore

/// Sits below NIO's HTTP/2 handler (above TLS, if any) and gathers the handler's writes into
/// one buffer per flush. NIO's HTTP/2 handler writes each frame's header as a write of its own,
/// and a DATA frame's payload as another.
/// - Over TLS, swift-nio-ssl seals every write as a record of its own: a small response
///   (HEADERS, DATA) was three records, each a seal and 22 bytes more on the wire. Gathered, the
///   responses of a tick are a record per 16 KiB.
/// - In the clear (h2c), every write is an entry in NIO's queue of pending writes, with its
///   promise, and a piece of the `writev`: gathered, a client's h2c requests cost 7% less CPU
///   each, and gRPC calls to h2c upstreams 4% less (paired runs, benchmarks/RESULTS.md).
///
/// It sits on the listeners' HTTP/2 connections and on the upstream ones alike.
///
/// Written here because neither package offers it. The gathered buffer lives from the first
/// write to the flush, so an idle connection holds none.
final class HTTP2WriteCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// A TLS record's largest plaintext: writes this size or larger go through as they are.
    static let limit = 16 * 1024

    private var pending: ByteBuffer?
    /// Completes when the gathered bytes are written; the other writes' promises follow it.
    private var promise: EventLoopPromise<Void>?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .byteBuffer(let buffer) = unwrapOutboundIn(data), buffer.readableBytes < Self.limit else {
            emit(context: context)
            context.write(data, promise: promise)
            return
        }
        if let gathered = pending?.readableBytes, gathered + buffer.readableBytes > Self.limit { emit(context: context) }
        if pending == nil {
            pending = buffer  // copied (copy-on-write) only if a second write joins it
        } else {
            pending!.writeImmutableBuffer(buffer)
        }
        if let promise {
            if let lead = self.promise { lead.futureResult.cascade(to: promise) } else { self.promise = promise }
        }
    }

    func flush(context: ChannelHandlerContext) {
        emit(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        emit(context: context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        emit(context: context)
    }

    private func emit(context: ChannelHandlerContext) {
        guard let buffer = pending.take() else { return }
        context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: promise.take())
    }
}
