import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import GantryProxy

struct HTTP1MessageWriterTests {
    /// The bytes the writer hands to the channel, in order, and in how many writes.
    private struct Wire {
        var writes: [ByteBuffer] = []
        var text: String { writes.map { String(buffer: $0) }.joined() }
    }

    private static func write(_ steps: (inout HTTP1MessageWriter, ByteBufferAllocator, (ByteBuffer) -> Void) -> Void) -> Wire {
        var writer = HTTP1MessageWriter()
        var wire = Wire()
        steps(&writer, ByteBufferAllocator()) { wire.writes.append($0) }
        if let rest = writer.take() { wire.writes.append(rest) }
        return wire
    }

    private static func response(_ status: HTTPResponseStatus, _ fields: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: HTTPHeaders(fields))
    }

    @Test func shortCopiesCopyEveryByteAndNothingMore() {
        let source = (0..<64).map { UInt8($0 + 1) }
        var wrong: [Int] = []
        for count in 0...40 {
            var target = [UInt8](repeating: 0, count: 48)
            target.withUnsafeMutableBytes { out in
                source.withUnsafeBytes { _ = out.copyShort(from: UnsafeRawBufferPointer(rebasing: $0[..<count]), at: 3) }
            }
            if target != [0, 0, 0] + source[..<count] + [UInt8](repeating: 0, count: 45 - count) { wrong.append(count) }
        }
        #expect(wrong == [])
    }

    @Test func aSmallResponseLeavesInOneWrite() {
        let wire = Self.write { writer, allocator, emit in
            writer.writeHead(Self.response(.ok, [("content-length", "2"), ("x-request-id", "r1")]), toHEAD: false, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "ok"), allocator: allocator, emit: emit)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(wire.writes.count == 1)
        #expect(wire.text == "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-request-id: r1\r\n\r\nok")
    }

    @Test func aLengthExcludesTransferCodings() {
        let wire = Self.write { writer, allocator, emit in
            writer.writeHead(Self.response(.ok, [("Transfer-Encoding", "chunked"), ("Content-Length", "1")]), toHEAD: false, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "a"), allocator: allocator, emit: emit)
        }
        #expect(wire.text == "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    }

    /// Without a length an HTTP/1.1 body is chunked; a part too large to copy goes out as it
    /// is, between the bytes gathered before and after it; trailers end the body.
    @Test func aBodyWithoutALengthIsChunked() throws {
        let large = String(repeating: "a", count: HTTP1MessageWriter.coalesceLimit + 1)
        let wire = Self.write { writer, allocator, emit in
            writer.writeHead(Self.response(.ok, [("x", "y"), ("transfer-encoding", "chunked")]), toHEAD: false, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "hello"), allocator: allocator, emit: emit)
            writer.writeBody(ByteBuffer(), allocator: allocator, emit: emit)  // an empty part must not end the body
            writer.writeBody(ByteBuffer(string: large), allocator: allocator, emit: emit)
            writer.writeEnd(HTTPHeaders([("t", "v")]), allocator: allocator)
        }
        let size = String(large.utf8.count, radix: 16)
        #expect(wire.text == "HTTP/1.1 200 OK\r\nx: y\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n\(size)\r\n\(large)\r\n0\r\nt: v\r\n\r\n")
        #expect(wire.writes.count == 3)
        #expect(wire.writes[1].readableBytes == large.utf8.count)

        // What a client reads back.
        var parser = HTTPResponseParser()
        var body = ""
        var trailers: HTTPHeaders?
        for buffer in wire.writes {
            try parser.parse(buffer, method: .GET) { part in
                if case .body(let bytes) = part { body += String(buffer: bytes) }
                if case .end(let fields, _) = part { trailers = fields }
                return true
            }
        }
        #expect(body == "hello" + large)
        #expect(trailers?.first(name: "t") == "v")
    }

    @Test func anHTTP10BodyWithoutALengthRunsUntilTheClose() {
        let wire = Self.write { writer, allocator, emit in
            writer.writeHead(Self.response(.ok, [("x", "y")], version: .http1_0), toHEAD: false, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "raw"), allocator: allocator, emit: emit)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(wire.text == "HTTP/1.0 200 OK\r\nx: y\r\n\r\nraw")
    }

    @Test(arguments: [HTTPResponseStatus.noContent, .notModified])
    func aStatusWithoutContentHasNoFramingAndNoBody(_ status: HTTPResponseStatus) {
        let wire = Self.write { writer, allocator, emit in
            writer.writeHead(
                Self.response(status, [("content-length", "3"), ("etag", "\"1\""), ("transfer-encoding", "chunked")]), toHEAD: false,
                allocator: allocator)
            writer.writeBody(ByteBuffer(string: "abc"), allocator: allocator, emit: emit)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(wire.text == "HTTP/1.1 \(status.code) \(status.reasonPhrase)\r\netag: \"1\"\r\n\r\n")
    }

    /// A response to HEAD describes the GET's body, and has none.
    @Test func aResponseToHEADKeepsItsFramingFieldsAndSendsNoBody() {
        let withLength = Self.write { writer, allocator, emit in
            writer.writeHead(Self.response(.ok, [("content-length", "10")]), toHEAD: true, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "0123456789"), allocator: allocator, emit: emit)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(withLength.text == "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
        let chunked = Self.write { writer, allocator, emit in
            writer.writeHead(Self.response(.ok, []), toHEAD: true, allocator: allocator)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(chunked.text == "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    }

    @Test func anInterimResponseGoesAheadOfTheHead() {
        let wire = Self.write { writer, allocator, _ in
            writer.writeInterim(.continue, version: .http1_1, allocator: allocator)
            writer.writeHead(Self.response(.created, [("content-length", "0")]), toHEAD: false, allocator: allocator)
        }
        #expect(wire.writes.count == 1)
        #expect(wire.text == "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
    }

    /// CR, LF or NUL in a value, or a name that is not a token, would let whoever chose it write
    /// fields or a message of their own: such a field is left out.
    @Test func fieldsThatWouldSplitTheHeadAreLeftOut() {
        let wire = Self.write { writer, allocator, _ in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/")
            head.headers = HTTPHeaders([
                ("host", "a"), ("x-user", "alice\r\nX-Injected: 1"), ("x-nul", "a\u{0}b"), ("bad name", "v"), ("x-ok", "fine"),
            ])
            writer.writeHead(head, allocator: allocator)
        }
        #expect(wire.text == "GET / HTTP/1.1\r\nhost: a\r\nx-ok: fine\r\n\r\n")
    }

    /// Fields are copied into the buffer's free space as it comes: a head larger than that,
    /// or one field larger than all of it, still leaves whole and in order.
    @Test func aHeadLargerThanTheBufferIsWrittenWhole() {
        let fields = (0..<60).map { ("x-field-\($0)", String(repeating: Character(UnicodeScalar(97 + $0 % 26)!), count: 90)) }
            + [("x-huge", String(repeating: "h", count: 9000)), ("bad name", "dropped"), ("x-last", "end")]
        let wire = Self.write { writer, allocator, _ in
            writer.writeHead(Self.response(.noContent, fields), toHEAD: false, allocator: allocator)
        }
        let expected = fields.filter { $0.0 != "bad name" }.map { "\($0.0): \($0.1)\r\n" }.joined()
        #expect(wire.text == "HTTP/1.1 204 No Content\r\n" + expected + "\r\n")
    }

    /// The head an upstream sent, read by ``HTTPResponseParser`` with the request's ID `r1`.
    private static func upstreamHead(_ wire: [UInt8]) throws -> UpstreamResponseHead {
        var parser = HTTPResponseParser()
        var head: UpstreamResponseHead?
        try parser.parse(ByteBuffer(bytes: wire), method: .GET, requestID: "r1") {
            if case .head(let received, _) = $0 { head = received }
            return true
        }
        return try #require(head)
    }

    /// An upstream's head goes on as the bytes that came, spacing and non-ASCII bytes kept,
    /// without its hop-by-hop fields, its own `X-Request-ID` and `Transfer-Encoding`, which the
    /// writer declares itself.
    @Test func anUpstreamHeadGoesOnAsItsBytes() throws {
        let wire = Array("HTTP/1.1 200 OK\r\nServer: up\r\nConnection: keep-alive\r\nX-Odd:value  \r\nX-Bytes: caf".utf8) + [0xC3, 0xA9, 0x20, 0xFF]
            + Array("\r\nTransfer-Encoding: chunked\r\nX-Request-ID: up\r\nX-Last: 1\r\n\r\n".utf8)
        let head = try Self.upstreamHead(wire)
        guard case .lines(let lines) = head.fields else {
            Issue.record("the head was built, not kept as bytes")
            return
        }
        var writer = HTTP1MessageWriter()
        writer.writeHead(head, lines: lines, toHEAD: false, allocator: ByteBufferAllocator())
        writer.writeBody(ByteBuffer(string: "ok"), allocator: ByteBufferAllocator()) { _ in }
        writer.writeEnd(nil, allocator: ByteBufferAllocator())
        let expected = Array("HTTP/1.1 200 OK\r\nServer: up\r\nX-Odd:value  \r\nX-Bytes: caf".utf8) + [0xC3, 0xA9, 0x20, 0xFF]
            + Array("\r\nX-Last: 1\r\nx-request-id: r1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".utf8)
        let written = writer.take()
        #expect(written.map { Array($0.readableBytesView) } == expected)
        // Built, for a policy to edit, the fields are the same ones.
        #expect(head.headers.map(\.name) == ["Server", "X-Odd", "X-Bytes", "X-Last", "x-request-id"])
        #expect(head.headers.first(name: "x-odd") == "value")

        // To HEAD: the length stays, no body follows.
        let sized = try Self.upstreamHead(Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".utf8))
        guard case .lines(let sizedLines) = sized.fields else {
            Issue.record("the head was built, not kept as bytes")
            return
        }
        writer.writeHead(sized, lines: sizedLines, toHEAD: true, allocator: ByteBufferAllocator())
        writer.writeBody(ByteBuffer(string: "hello"), allocator: ByteBufferAllocator()) { _ in }
        #expect(writer.take().map { String(buffer: $0) } == "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-request-id: r1\r\n\r\n")
    }

    /// A head whose kept lines come in more runs than are held inline, or whose `Connection`
    /// names fields, is built instead, with the same fields left out.
    @Test func anUpstreamHeadThatCannotStayBytesIsBuilt() throws {
        let scattered = try Self.upstreamHead(
            Array(
                ("HTTP/1.1 200 OK\r\nA: 1\r\nKeep-Alive: t\r\nB: 2\r\nUpgrade: x\r\nC: 3\r\nTrailer: y\r\nD: 4\r\n"
                    + "TE: trailers\r\nE: 5\r\n\r\n").utf8))
        guard case .built(let built) = scattered.fields else {
            Issue.record("five runs of lines were kept as bytes")
            return
        }
        #expect(built.map { "\($0.name)=\($0.value)" } == ["A=1", "B=2", "C=3", "D=4", "E=5", "x-request-id=r1"])

        let nominating = try Self.upstreamHead(Array("HTTP/1.1 200 OK\r\nX-Debug: 1\r\nConnection: x-debug\r\nF: 6\r\n\r\n".utf8))
        guard case .built(let fields) = nominating.fields else {
            Issue.record("a head whose Connection names a field was kept as bytes")
            return
        }
        #expect(fields.map { "\($0.name)=\($0.value)" } == ["F=6", "x-request-id=r1"])
    }

    /// Writers on one loop write their heads into the buffer last flushed; bytes the channel
    /// still holds are never changed by that.
    @Test func aSpareBufferNeverChangesBytesTheChannelStillHolds() throws {
        final class Writes: ChannelOutboundHandler {
            typealias OutboundIn = ByteBuffer
        }
        let channel = EmbeddedChannel(handler: Writes())
        let context = try channel.pipeline.syncOperations.context(handlerType: Writes.self)
        let spare = HTTP1MessageWriter.SpareBuffer()
        var first = HTTP1MessageWriter(spare: spare)
        var second = HTTP1MessageWriter(spare: spare)
        first.writeHead(Self.response(.ok, [("content-length", "0"), ("a", "1")]), toHEAD: false, allocator: channel.allocator)
        first.flush(through: context)
        #expect(spare.buffer != nil)
        second.writeHead(Self.response(.notFound, [("content-length", "0")]), toHEAD: false, allocator: channel.allocator)
        second.flush(through: context)
        // The embedded channel keeps what was written until it is read: both heads are intact.
        let written = [try channel.readOutbound(as: ByteBuffer.self), try channel.readOutbound(as: ByteBuffer.self)]
        #expect(written.map { $0.map { String(buffer: $0) } } == ["HTTP/1.1 200 OK\r\ncontent-length: 0\r\na: 1\r\n\r\n", "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"])
        // A large buffer (a coalesced body) is not kept.
        first.writeHead(Self.response(.ok, [("content-length", "12288")]), toHEAD: false, allocator: channel.allocator)
        for _ in 0..<3 {
            first.writeBody(ByteBuffer(repeating: 0x61, count: HTTP1MessageWriter.coalesceLimit), allocator: channel.allocator) { _ in }
        }
        first.flush(through: context)
        #expect(spare.buffer == nil)
        _ = try channel.finish()
    }

    @Test func requestsAreFramedAsGantryDeclaredThem() {
        let chunked = Self.write { writer, allocator, emit in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/up?a=1")
            head.headers = HTTPHeaders([("host", "a"), ("transfer-encoding", "chunked")])
            writer.writeHead(head, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "0123456789abcdef!"), allocator: allocator, emit: emit)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(chunked.writes.count == 1)
        #expect(chunked.text == "POST /up?a=1 HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n11\r\n0123456789abcdef!\r\n0\r\n\r\n")

        let sized = Self.write { writer, allocator, emit in
            var head = HTTPRequestHead(version: .http1_1, method: .PUT, uri: "/x")
            head.headers = HTTPHeaders([("content-length", "3")])
            writer.writeHead(head, allocator: allocator)
            writer.writeBody(ByteBuffer(string: "abc"), allocator: allocator, emit: emit)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(sized.text == "PUT /x HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc")

        let bodiless = Self.write { writer, allocator, _ in
            writer.writeHead(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/"), allocator: allocator)
            writer.writeEnd(nil, allocator: allocator)
        }
        #expect(bodiless.text == "GET / HTTP/1.1\r\n\r\n")
    }
}
