import Foundation
import GantryConfig
import GantryTestSupport
import Testing

@testable import GantryProxy

/// RFC 9113's rules for errors and closing, frame by frame on a raw h2c connection: what is
/// sent is exactly what the test writes, and every frame that comes back is read.
extension LiveProxyTests {
    struct Frame: CustomStringConvertible {
        static let data: UInt8 = 0x0, headers: UInt8 = 0x1, rstStream: UInt8 = 0x3, ping: UInt8 = 0x6, goAway: UInt8 = 0x7

        let type: UInt8
        let flags: UInt8
        let stream: UInt32
        let payload: [UInt8]

        var endsStream: Bool { flags & 0x1 != 0 && (type == Self.data || type == Self.headers) }
        /// The error code of RST_STREAM, or of GOAWAY.
        var errorCode: UInt32? {
            switch type {
            case Self.rstStream: Self.integer(payload, at: 0)
            case Self.goAway: Self.integer(payload, at: 4)
            default: nil
            }
        }
        var lastStreamID: UInt32? { type == Self.goAway ? Self.integer(payload, at: 0) & 0x7FFF_FFFF : nil }
        var text: String { String(decoding: payload, as: UTF8.self) }
        var description: String { "frame(type \(type), flags \(flags), stream \(stream), \(payload.count) bytes)" }

        static func integer(_ bytes: [UInt8], at offset: Int) -> UInt32 {
            bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
        }
    }

    static func readFrame(_ connection: RawHTTPConnection, timeout: Double = 10) async throws -> Frame {
        let head = try await connection.readBytes(9, timeout: timeout)
        let length = Int(head[0]) << 16 | Int(head[1]) << 8 | Int(head[2])
        let payload = length == 0 ? [] : try await connection.readBytes(length, timeout: timeout)
        return Frame(type: head[3], flags: head[4], stream: Frame.integer(Array(head[5..<9]), at: 0) & 0x7FFF_FFFF, payload: payload)
    }

    /// Frames until `done` says the last one read is enough.
    static func readFrames(_ connection: RawHTTPConnection, until done: ([Frame]) -> Bool) async throws -> [Frame] {
        var frames: [Frame] = []
        while !done(frames) { frames.append(try await readFrame(connection)) }
        return frames
    }

    /// A header block of a request for `path` (HPACK, RFC 7541: static entries and literals
    /// without indexing), with `extra` fields as literals with new names.
    static func requestBlock(method: UInt8 = 0x82, path: String, extra: [(String, String)] = []) -> [UInt8] {
        var block: [UInt8] = [method, 0x86, 0x04, UInt8(path.utf8.count)] + Array(path.utf8) + [0x41, 11] + Array("example.com".utf8)
        for (name, value) in extra { block += [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8) }
        return block
    }

    /// HEADERS with END_HEADERS, and END_STREAM unless a body follows.
    static func headers(stream: UInt32, _ block: [UInt8], endStream: Bool = true) -> [UInt8] {
        frame(type: Frame.headers, flags: endStream ? 0x5 : 0x4, stream: stream, block)
    }

    /// A response whose body came in one upstream read is one HEADERS and one DATA frame that
    /// carries END_STREAM, not an empty DATA after it: each frame costs NIO's state machine,
    /// encoder and (over TLS) a seal. Three requests at once, each answered so.
    @Test func aResponseIsHeadersAndOneDataFrameThatEndsTheStream() async throws {
        try await withProxy(upstreams: 1, yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            try connection.send(
                Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/a")) + Self.headers(stream: 3, Self.requestBlock(path: "/b"))
                    + Self.headers(stream: 5, Self.requestBlock(path: "/c")))
            let frames = try await Self.readFrames(connection) { frames in
                [1, 3, 5].allSatisfy { stream in frames.contains { $0.stream == stream && $0.endsStream } }
            }
            for stream in [UInt32(1), 3, 5] {
                let mine = frames.filter { $0.stream == stream }
                #expect(mine.map(\.type) == [Frame.headers, Frame.data], "\(mine)")
                #expect(mine.last?.endsStream == true && mine.last?.payload.isEmpty == false, "\(mine)")
            }
        }
    }

    /// A GET whose HEADERS do not end the stream is held until the stream shows whether a body
    /// follows: an empty DATA with END_STREAM sends it on; DATA with bytes its head did not
    /// announce is refused with 400 and nothing of it goes upstream (not even the head), while
    /// the connection's other requests are served meanwhile.
    @Test func aHeadWithoutEndStreamWaitsToKnowWhetherABodyFollows() async throws {
        try await withProxy(upstreams: 1, yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            try connection.send(
                Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/held"), endStream: false)
                    + Self.headers(stream: 3, Self.requestBlock(path: "/other")))
            var frames = try await Self.readFrames(connection) { $0.contains { $0.stream == 3 && $0.endsStream } }
            #expect(harness.upstreamRequestCount == 1, "\(frames)")  // /other only: /held is held
            try connection.send(Self.frame(type: Frame.data, flags: 0, stream: 1, Array("GET /smuggled HTTP/1.1\r\n\r\n".utf8)))
            frames = try await Self.readFrames(connection) { $0.contains { $0.stream == 1 && ($0.endsStream || $0.type == Frame.rstStream) } }
            let status = frames.first { $0.stream == 1 && $0.type == Frame.headers }?.payload.first
            #expect(status == 0x8C, "\(frames)")  // :status 400, static table entry 12
            #expect(harness.upstreamRequestCount == 1)

            try connection.send(
                Self.headers(stream: 5, Self.requestBlock(path: "/later"), endStream: false) + Self.frame(type: Frame.data, flags: 0x1, stream: 5, []))
            frames = try await Self.readFrames(connection) { $0.contains { $0.stream == 5 && $0.endsStream } }
            #expect(frames.filter { $0.stream == 5 && $0.type == Frame.data }.map(\.text).joined().contains(#""path":"/later""#), "\(frames)")
            #expect(harness.upstreamRequestCount == 2)
        }
    }

    /// A held head goes on as a streaming request once a head's time is up, as it did unheld.
    @Test func aHeldHeadGoesOnWhenTheHeadTimeoutPasses() async throws {
        let yaml = { (ports: [Int]) in
            Self.h2cYAML(ports).replacingOccurrences(
                of: "listeners: [{name: plain, port: 0, http2: true}]", with: "listeners: [{name: plain, port: 0, http2: true}]\n  timeouts: {requestHeaders: 200ms}")
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let connection = try harness.connect()
            try connection.send(Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/slow"), endStream: false))
            #expect(await eventually { harness.upstreamRequestCount == 1 })
            try connection.send(Self.frame(type: Frame.data, flags: 0x1, stream: 1, []))
            let frames = try await Self.readFrames(connection) { $0.contains { $0.stream == 1 && $0.endsStream } }
            #expect(frames.filter { $0.stream == 1 && $0.type == Frame.data }.map(\.text).joined().contains(#""path":"/slow""#), "\(frames)")
        }
    }

    /// RFC 9113 §5.4.2, §8.1.1: a malformed request is a stream error. Its stream is reset with
    /// PROTOCOL_ERROR; the connection, and the requests multiplexed beside it, go on.
    @Test func aStreamErrorResetsThatStreamOnly_RFC9113_5_4_2() async throws {
        try await withProxy(upstreams: 1, yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            try connection.send(
                Self.preface
                    + Self.headers(stream: 1, Self.requestBlock(path: "/upper", extra: [("X-Upper", "1")]))  // uppercase name
                    + Self.headers(stream: 3, Self.requestBlock(path: "/hop", extra: [("connection", "keep-alive")]))  // §8.2.2
                    + Self.headers(stream: 5, Self.requestBlock(path: "/good")))
            let frames = try await Self.readFrames(connection) { $0.contains { $0.stream == 5 && $0.endsStream } }
            #expect(frames.contains { $0.type == Frame.rstStream && $0.stream == 1 && $0.errorCode == 1 }, "\(frames)")
            #expect(frames.contains { $0.type == Frame.rstStream && $0.stream == 3 && $0.errorCode == 1 }, "\(frames)")
            #expect(!frames.contains { $0.type == Frame.goAway }, "\(frames)")
            #expect(frames.filter { $0.stream == 5 && $0.type == Frame.data }.map(\.text).joined().contains(#""path":"/good""#))

            // The connection is still good for another request.
            try connection.send(Self.headers(stream: 7, Self.requestBlock(path: "/after")))
            let after = try await Self.readFrames(connection) { $0.contains { $0.stream == 7 && $0.endsStream } }
            #expect(after.filter { $0.stream == 7 && $0.type == Frame.data }.map(\.text).joined().contains(#""path":"/after""#))
            #expect(harness.upstreamRequestCount == 2, "the malformed requests never reached the upstream")
            let counters = await harness.plane.counters()
            #expect(counters[.http2StreamErrors] == 2)
            #expect(counters[.http2ProtocolErrors] == 0)
        }
    }

    /// A client that resets its connection (it crashed, a tab was closed) made no protocol
    /// error: the socket's failure is not counted as one, and NIO closes the channel itself.
    @Test func aClientThatResetsItsConnectionIsNoProtocolError() async throws {
        try await withProxy(upstreams: 1, yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            try connection.send(Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/one")))
            _ = try await Self.readFrames(connection) { $0.contains { $0.stream == 1 && $0.endsStream } }
            connection.reset()
            #expect(await eventually { await harness.plane.connectionCount() == 0 })
            #expect(await harness.plane.counters()[.http2ProtocolErrors] == 0)
        }
    }

    /// RFC 9113 §5.4.1, §6.8: a connection error ends with a GOAWAY whose last stream is the
    /// last one gantry processed, so a client knows the streams above it are safe to retry.
    @Test func aConnectionErrorsGoAwayNamesTheLastProcessedStream_RFC9113_6_8() async throws {
        try await withProxy(upstreams: 1, yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            try connection.send(Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/one")))
            _ = try await Self.readFrames(connection) { $0.contains { $0.stream == 1 && $0.endsStream } }
            // DATA on stream 0 is a connection error of type PROTOCOL_ERROR (§6.1).
            try connection.send(Self.frame(type: Frame.data, flags: 0, stream: 0, [1, 2, 3]))
            var goAways: [Frame] = []
            while let frame = try? await Self.readFrame(connection, timeout: 5) {
                if frame.type == Frame.goAway { goAways.append(frame) }
            }
            #expect(goAways.last?.lastStreamID == 1, "\(goAways.map { $0.lastStreamID ?? 0 })")
            #expect(goAways.allSatisfy { $0.errorCode == 1 })
            // A later GOAWAY never names a higher stream than an earlier one.
            #expect(zip(goAways, goAways.dropFirst()).allSatisfy { $0.lastStreamID! >= $1.lastStreamID! })
            #expect(await connection.waitForClose())
            #expect(await harness.plane.counters()[.http2ProtocolErrors] == 1)
        }
    }

    /// RFC 9113 §6.8: a graceful shutdown sends GOAWAY(2^31−1, NO_ERROR) and a PING, and when
    /// the PING comes back, GOAWAY with the real last stream. A stream opened after the first
    /// GOAWAY is refused with REFUSED_STREAM (NIO's state machine takes no new stream once a
    /// GOAWAY is out), which §8.7 makes safe to retry; the stream in flight finishes; then the
    /// connection closes.
    @Test func aDrainIsATwoStepGoAway_RFC9113_6_8() async throws {
        try await withProxy(upstreams: 1, yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            try connection.send(Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/slow", extra: [("x-echo-delay", "800ms")])))
            #expect(await eventually { harness.upstreamRequestCount == 1 })
            let draining = Task { await harness.plane.drain(gracePeriod: .seconds(10)) }

            let announced = try await Self.readFrames(connection) { $0.contains { $0.type == Frame.ping && $0.flags & 0x1 == 0 } }
            let first = try #require(announced.first { $0.type == Frame.goAway })
            #expect(first.lastStreamID == 0x7FFF_FFFF)
            #expect(first.errorCode == 0)
            let ping = try #require(announced.last)
            try connection.send(Self.headers(stream: 3, Self.requestBlock(path: "/late")))
            let refused = try await Self.readFrames(connection) { $0.contains { $0.stream == 3 } }
            #expect(refused.last?.type == Frame.rstStream && refused.last?.errorCode == 7, "REFUSED_STREAM: \(refused)")

            try connection.send(Self.frame(type: Frame.ping, flags: 0x1, stream: 0, ping.payload))
            let final = try await Self.readFrames(connection) { $0.contains { $0.type == Frame.goAway } }
            let goAway = try #require(final.last)
            #expect(goAway.lastStreamID == 1)
            #expect(goAway.errorCode == 0)

            var rest: [Frame] = final
            while let frame = try? await Self.readFrame(connection, timeout: 5) { rest.append(frame) }
            #expect(rest.filter { $0.stream == 1 && $0.type == Frame.data }.map(\.text).joined().contains(#""path":"/slow""#), "\(rest)")
            #expect(rest.contains { $0.stream == 1 && $0.endsStream })
            #expect(await connection.waitForClose())
            await draining.value
            #expect(harness.upstreamRequestCount == 1, "the refused stream never reached the upstream")
        }
    }

    /// RFC 9113 §6.8 when a listener is removed by a new configuration: its HTTP/2
    /// connections get the same two-step GOAWAY, finish the stream in flight and close, while
    /// the other listener serves on.
    @Test func aRemovedListenersConnectionsGetTheTwoStepGoAway_RFC9113_6_8() async throws {
        let yaml = { (ports: [Int]) in
            Self.h2cYAML(ports).replacingOccurrences(
                of: "listeners: [{name: plain, port: 0, http2: true}]",
                with: "listeners: [{name: plain, port: 0, http2: true}, {name: leaving, port: 0, http2: true}]")
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let connection = try harness.connect(port: harness.ports[1])
            try connection.send(Self.preface + Self.headers(stream: 1, Self.requestBlock(path: "/slow", extra: [("x-echo-delay", "500ms")])))
            #expect(await eventually { harness.upstreamRequestCount == 1 })
            let without = try ConfigLoader.load(yaml: Self.h2cYAML(harness.upstreamPorts), file: "test.yaml", coreCount: 2).get().snapshot
            let applying = Task { try await harness.plane.applyListeners(without) }

            let announced = try await Self.readFrames(connection) { $0.contains { $0.type == Frame.ping && $0.flags & 0x1 == 0 } }
            #expect(announced.first { $0.type == Frame.goAway }?.lastStreamID == 0x7FFF_FFFF)
            try connection.send(Self.frame(type: Frame.ping, flags: 0x1, stream: 0, announced.last!.payload))
            var rest: [Frame] = []
            while let frame = try? await Self.readFrame(connection, timeout: 5) { rest.append(frame) }
            #expect(rest.first { $0.type == Frame.goAway }?.lastStreamID == 1, "\(rest)")
            #expect(rest.filter { $0.stream == 1 && $0.type == Frame.data }.map(\.text).joined().contains(#""path":"/slow""#))
            #expect(await connection.waitForClose())
            _ = try await applying.value
            #expect(try await harness.get("/still", port: harness.ports[0]).status == 200)
        }
    }

    /// RFC 9113 §8.1: a response complete before the request body was read ends the request
    /// stream with RST_STREAM(NO_ERROR), which asks the client to stop sending without error.
    @Test func anEarlyResponseEndsTheRequestStreamWithNoError_RFC9113_8_1() async throws {
        let yaml = { (ports: [Int]) in
            Self.h2cYAML(ports).replacingOccurrences(of: "listeners: [{name: plain, port: 0, http2: true}]", with: "listeners: [{name: plain, port: 0, http2: true}]\n  limits: {maxBodySize: 1KiB}")
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let connection = try harness.connect()
            // POST /big with a body still to come, and a body limit it already exceeds.
            let block = Self.requestBlock(method: 0x83, path: "/big", extra: [("content-length", "99999999")])
            try connection.send(Self.preface + Self.headers(stream: 1, block, endStream: false))
            let frames = try await Self.readFrames(connection) { $0.contains { $0.stream == 1 && $0.type == Frame.rstStream } }
            #expect(frames.contains { $0.stream == 1 && $0.endsStream }, "the whole response came first: \(frames)")
            let reset = try #require(frames.last)
            #expect(reset.errorCode == 0, "RST_STREAM(NO_ERROR), not CANCEL (8)")
            #expect(!frames.contains { $0.type == Frame.goAway })
            #expect(harness.upstreamRequestCount == 0)
        }
    }
}
