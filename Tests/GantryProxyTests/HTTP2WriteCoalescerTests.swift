import NIOCore
import NIOEmbedded
import Testing

@testable import GantryProxy

/// The writes NIO's HTTP/2 handler makes between two flushes reach TLS, or the socket, as one
/// buffer: sealed as one record rather than a record each, or one pending write rather than many.
@Suite struct HTTP2WriteCoalescerTests {
    private func written(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
        var buffers: [ByteBuffer] = []
        while let data = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { Issue.record("a file region"); continue }
            buffers.append(buffer)
        }
        return buffers
    }

    private func isDone(_ promise: EventLoopPromise<Void>) -> Bool {
        var done = false
        promise.futureResult.assumeIsolated().whenComplete { _ in done = true }
        return done
    }

    @Test func smallWritesLeaveAsOneBufferAtTheFlushAndEveryPromiseCompletes() throws {
        let channel = EmbeddedChannel(handler: HTTP2WriteCoalescer())
        let promises = (0..<3).map { _ in channel.eventLoop.makePromise(of: Void.self) }
        for (index, text) in ["header", "payload", "more"].enumerated() {
            channel.write(IOData.byteBuffer(ByteBuffer(string: text)), promise: index == 1 ? nil : promises[index])
        }
        #expect(try written(channel).isEmpty)  // nothing before the flush
        channel.flush()
        #expect(try written(channel).map { String(buffer: $0) } == ["headerpayloadmore"])
        #expect(isDone(promises[0]) && isDone(promises[2]))
        promises[1].succeed()
        _ = try channel.finish()
    }

    @Test func aLargeWriteGoesAsItIsAfterWhatWasGatheredInOrder() throws {
        let channel = EmbeddedChannel(handler: HTTP2WriteCoalescer())
        let large = ByteBuffer(repeating: 0x61, count: HTTP2WriteCoalescer.limit)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "a")), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "b")), promise: nil)
        channel.write(IOData.byteBuffer(large), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "c")), promise: nil)
        channel.flush()
        #expect(try written(channel).map(\.readableBytes) == [2, HTTP2WriteCoalescer.limit, 1])
        _ = try channel.finish()
    }

    @Test func gatheringStopsAtARecordsSize() throws {
        let channel = EmbeddedChannel(handler: HTTP2WriteCoalescer())
        let part = ByteBuffer(repeating: 0x62, count: HTTP2WriteCoalescer.limit / 2 + 1)
        channel.write(IOData.byteBuffer(part), promise: nil)
        channel.write(IOData.byteBuffer(part), promise: nil)
        channel.flush()
        #expect(try written(channel).map(\.readableBytes) == [part.readableBytes, part.readableBytes])
        _ = try channel.finish()
    }

    /// What reaches the handler before it (TLS), in order.
    private final class Recorder: ChannelOutboundHandler {
        typealias OutboundIn = IOData
        var events: [String] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if case .byteBuffer(let buffer) = unwrapOutboundIn(data) { events.append("write \(String(buffer: buffer))") }
            context.write(data, promise: promise)
        }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            events.append("close")
            context.close(mode: mode, promise: promise)
        }
    }

    @Test func aCloseHandsOnWhatWasGatheredFirst() throws {
        let recorder = Recorder()
        let channel = EmbeddedChannel(handlers: [recorder, HTTP2WriteCoalescer()])
        channel.write(IOData.byteBuffer(ByteBuffer(string: "go")), promise: nil)
        channel.write(IOData.byteBuffer(ByteBuffer(string: "away")), promise: nil)
        #expect(recorder.events.isEmpty)
        channel.close(promise: nil)
        #expect(recorder.events == ["write goaway", "close"])
    }
}
