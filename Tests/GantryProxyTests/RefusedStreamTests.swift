import Foundation
import GantryTestSupport
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Synchronization
import Testing

@testable import GantryProxy

/// An HTTP/2 endpoint that turns away the first stream it is sent, in either of HTTP/2's two
/// ways of saying "not processed": RST_STREAM(REFUSED_STREAM), or a GOAWAY whose last stream
/// is below it. Every other stream gets 200 and its request's body back. Written on NIO here,
/// since no peer at hand can be told to refuse one stream.
final class RefusingHTTP2Server: Sendable {
    enum Refusal: Sendable { case refusedStream, goAway }

    let channel: any Channel
    /// Streams turned away so far, and answered, across every server sharing the counts.
    let counts: Counts

    final class Counts: Sendable {
        let toRefuse: Atomic<Int>
        let refused = Atomic<Int>(0)
        let answered = Atomic<Int>(0)

        init(toRefuse: Int = 1) {
            self.toRefuse = Atomic(toRefuse)
        }
    }

    init(refusal: Refusal, counts: Counts, group: any EventLoopGroup) async throws {
        self.counts = counts
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let http2 = NIOHTTP2Handler(mode: .server, eventLoop: channel.eventLoop) { stream in
                        stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(StreamHandler(refusal: refusal, counts: counts)) }
                    }
                    try channel.pipeline.syncOperations.addHandler(http2)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    var port: Int { channel.localAddress!.port! }

    private final class StreamHandler: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload

        let refusal: Refusal
        let counts: Counts
        var body = ByteBuffer()
        var turnedAway = false

        init(refusal: Refusal, counts: Counts) {
            self.refusal = refusal
            self.counts = counts
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !turnedAway else { return }
            switch unwrapInboundIn(data) {
            case .headers(let headers):
                if counts.toRefuse.subtract(1, ordering: .relaxed).oldValue > 0 {
                    turnedAway = true
                    counts.refused.add(1, ordering: .relaxed)
                    switch refusal {
                    case .refusedStream:
                        context.writeAndFlush(wrapOutboundOut(.rstStream(.refusedStream)), promise: nil)
                    case .goAway:
                        // On the connection: no stream was processed.
                        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil))
                        context.channel.parent?.writeAndFlush(goAway, promise: nil)
                    }
                    return
                }
                if headers.endStream { answer(context) }
            case .data(let data):
                if case .byteBuffer(var part) = data.data { body.writeBuffer(&part) }
                if data.endStream { answer(context) }
            default:
                break
            }
        }

        private func answer(_ context: ChannelHandlerContext) {
            counts.answered.add(1, ordering: .relaxed)
            context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-type": "text/plain"]))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(body), endStream: true))), promise: nil)
        }
    }
}

extension LiveProxyTests {
    /// A POST (never retried after it was processed) whose stream the endpoint refuses goes to
    /// the other endpoint with its whole body, whichever way the refusal came.
    @Test(arguments: [RefusingHTTP2Server.Refusal.refusedStream, .goAway])
    func aRefusedStreamIsSentAgainWithItsBody(_ refusal: RefusingHTTP2Server.Refusal) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let counts = RefusingHTTP2Server.Counts()
        let first = try await RefusingHTTP2Server(refusal: refusal, counts: counts, group: group)
        let second = try await RefusingHTTP2Server(refusal: refusal, counts: counts, group: group)
        defer {
            first.channel.close(promise: nil)
            second.channel.close(promise: nil)
        }
        let yaml: ([Int]) -> String = { _ in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{path: /, service: h2}]}
            services: [{name: h2, protocol: h2c, endpoints: [127.0.0.1:\(first.port), 127.0.0.1:\(second.port)]}]
            """
        }
        try await withProxy(upstreams: 0, yaml: yaml) { harness in
            let body = String(repeating: "the whole body ", count: 200)
            let result = try await run("curl", ["-s", "-X", "POST", "--data-binary", body, "http://127.0.0.1:\(harness.port)/orders"])
            #expect(result.output == body, "\(result.output.prefix(200))")
            #expect(counts.refused.load(ordering: .relaxed) == 1)
            #expect(counts.answered.load(ordering: .relaxed) == 1)
            let counters = await harness.plane.counters()
            #expect(counters[.retries] == 1, "\(counters)")
        }
    }

    /// A response whose last DATA frame is the one that uses half the connection's window:
    /// the connection's WINDOW_UPDATE, written while that frame is read, makes NIO deliver the
    /// stream's close at once, before the frame's END_STREAM is handled, and the response must
    /// still end whole, not be taken for a stream reset under it. 512 KiB is 32 full frames of
    /// 16 KiB, half of the 1 MiB window gantry gives an upstream connection, on each request
    /// the connection carries.
    @Test func aResponseWhoseLastFrameFillsHalfTheWindowEndsWhole() async throws {
        try await withEchoingH2CService { harness, counts in
            let body = [UInt8](repeating: UInt8(ascii: "x"), count: HTTP2UpstreamConnection.connectionWindow / 2)
            for _ in 0..<3 {
                let connection = try harness.connect()
                try connection.send(request(["POST /half HTTP/1.1", "Host: example.com", "Content-Length: \(body.count)"]))
                try connection.send(body)
                let response = try await connection.readResponse()
                #expect(response.status == 200)
                #expect(response.body.count == body.count)
            }
            #expect(counts.answered.load(ordering: .relaxed) == 3)
        }
    }

    /// A body far larger than every flow-control window crosses an `h2c` service both ways:
    /// gantry's request waits for the endpoint's window, and gantry gives its own back as the
    /// client reads the response (a curl that reads slowly included).
    @Test func aLargeBodyCrossesAnH2CServiceBothWays() async throws {
        try await withEchoingH2CService { harness, _ in
            let directory = GantryProcess.scratchDirectory()
            let input = directory.appendingPathComponent("big.bin")
            let output = directory.appendingPathComponent("back.bin")
            let bytes = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            try Data(bytes).write(to: input)
            let result = try await run(
                "curl", ["-sS", "--limit-rate", "8M", "-o", output.path, "-w", "%{http_code}", "--data-binary", "@\(input.path)", "http://127.0.0.1:\(harness.port)/big"])
            #expect(result.output == "200")
            #expect(result.status == 0, "curl: \(result.error)")
            let back = try Data(contentsOf: output)
            let firstDifference = zip(back, bytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(back.count, bytes.count)
            #expect(back.count == bytes.count && firstDifference == bytes.count, "read back \(back.count) bytes of \(bytes.count), first difference at \(firstDifference)")
        }
    }

    /// A proxy whose every route goes to one `h2c` endpoint that answers 200 with the request's
    /// body.
    private func withEchoingH2CService(_ body: (ProxyHarness, RefusingHTTP2Server.Counts) async throws -> Void) async throws {
        let counts = RefusingHTTP2Server.Counts(toRefuse: 0)
        let server = try await RefusingHTTP2Server(refusal: .refusedStream, counts: counts, group: MultiThreadedEventLoopGroup.singleton)
        defer { server.channel.close(promise: nil) }
        let yaml: ([Int]) -> String = { _ in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{path: /, service: h2}]}
            services: [{name: h2, protocol: h2c, endpoints: [127.0.0.1:\(server.port)]}]
            """
        }
        try await withProxy(upstreams: 0, yaml: yaml) { harness in try await body(harness, counts) }
    }
}
