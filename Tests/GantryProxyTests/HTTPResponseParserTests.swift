import NIOCore
import NIOHTTP1
import Testing

@testable import GantryProxy

struct HTTPResponseParserTests {
    /// The parts a parser hands out for `wire`, fed in the given pieces, written one per line
    /// with the bodies' bytes joined: what arrives must not depend on how the bytes were split.
    private static func parts(_ pieces: [String], method: HTTPMethod = .GET, closeAtEnd: Bool = false, upgrading: Bool = false) throws -> [String] {
        var parser = HTTPResponseParser()
        var out: [String] = []
        var body = ""
        func take(_ part: HTTPResponseParser.Part) -> Bool {
            switch part {
            case .head(let head, let keepAlive):
                let fields = head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
                out.append("head \(head.version) \(head.status.code) [\(fields)]" + (keepAlive ? "" : " close"))
            case .body(let buffer):
                body += String(buffer: buffer)
            case .end(let trailers, let followedByBytes):
                if !body.isEmpty { out.append("body \(body)") }
                body = ""
                out.append(
                    "end" + (trailers.map { " [" + $0.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "]" } ?? "")
                        + (followedByBytes ? " +bytes" : ""))
            case .switched(let rest):
                out.append("switched \(String(buffer: rest))")
            }
            return true
        }
        for piece in pieces {
            try parser.parse(ByteBuffer(string: piece), method: method, upgrading: upgrading, emit: take)
        }
        if closeAtEnd, parser.endOfInput() { _ = take(.end(nil, followedByBytes: false)) }
        if !body.isEmpty { out.append("body \(body) (unfinished)") }
        return out
    }

    /// A 101 to a request that asked to switch: its head without the hop-by-hop fields (gantry
    /// writes its own), then the bytes after it, which are the new protocol's, untouched.
    @Test func aSwitchAskedForHandsOnTheBytesAfterTheHead() throws {
        let wire = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc=\r\n\r\nframe bytes"
        let parsed = try Self.parts([wire], upgrading: true)
        #expect(parsed == ["head HTTP/1.1 101 [Sec-WebSocket-Accept=abc=] close", "switched frame bytes"])
    }

    /// Every way of cutting `wire` in two, and byte by byte, gives the same parts as in one piece.
    private static func expectSplitsAgree(_ wire: String, method: HTTPMethod = .GET, closeAtEnd: Bool = false) throws -> [String] {
        let whole = try parts([wire], method: method, closeAtEnd: closeAtEnd)
        let bytes = Array(wire.utf8)
        for cut in 1..<bytes.count {
            let pieces = [String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)]
            #expect(try parts(pieces, method: method, closeAtEnd: closeAtEnd) == whole, "cut at \(cut)")
        }
        let single = bytes.map { String(decoding: [$0], as: UTF8.self) }
        #expect(try parts(single, method: method, closeAtEnd: closeAtEnd) == whole)
        return whole
    }

    /// A known code goes on with its standard reason phrase, as NIO writes it; an unknown one
    /// keeps the upstream's phrase.
    @Test func reasonPhrasesAreKeptOnlyForUnknownCodes() throws {
        var statuses: [HTTPResponseStatus] = []
        for wire in ["HTTP/1.1 200 Fine\r\ncontent-length: 0\r\n\r\n", "HTTP/1.1 299 Fine By Me\r\ncontent-length: 0\r\n\r\n", "HTTP/1.1 599\r\ncontent-length: 0\r\n\r\n"] {
            var parser = HTTPResponseParser()
            try parser.parse(ByteBuffer(string: wire), method: .GET) { part in
                if case .head(let head, _) = part { statuses.append(head.status) }
                return true
            }
        }
        #expect(statuses == [.ok, .custom(code: 299, reasonPhrase: "Fine By Me"), .custom(code: 599, reasonPhrase: "")])
        #expect(statuses.map(\.reasonPhrase) == ["OK", "Fine By Me", ""])
    }

    @Test func contentLengthBodies() throws {
        let wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up:  spaced value \t\r\n\r\nhello"
        #expect(try Self.expectSplitsAgree(wire) == ["head HTTP/1.1 200 [Content-Length=5,X-Up=spaced value]", "body hello", "end"])
    }

    @Test func chunkedBodiesWithExtensionsAndTrailers() throws {
        let wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n4;name=\"v\"\r\nwiki\r\nA \t; x\r\n0123456789\r\n0\r\nDigest: x\r\nX-T: 2\r\n\r\n"
        #expect(
            try Self.expectSplitsAgree(wire) == [
                "head HTTP/1.1 200 []", "body wiki0123456789", "end [Digest=x,X-T=2]",
            ])
        #expect(
            try Self.expectSplitsAgree("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n") == [
                "head HTTP/1.1 200 []", "body abc", "end",
            ])
    }

    @Test func hopByHopFieldsAndTheUpstreamsRequestIDStayBehind() throws {
        // A field `Connection` names goes too, wherever it stands; `Content-Length` never does.
        let wire = "HTTP/1.1 200 OK\r\nX-Debug: 1\r\nServer: up\r\nConnection: keep-alive, X-Debug, content-length\r\n"
            + "Keep-Alive: timeout=5\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
            + "X-Request-ID: upstream's\r\nContent-Length: 2\r\nX-Debugger: stays\r\n\r\nok"
        #expect(try Self.expectSplitsAgree(wire) == ["head HTTP/1.1 200 [Server=up,Content-Length=2,X-Debugger=stays]", "body ok", "end"])
        // The request's own ID takes the place of the upstream's.
        var parser = HTTPResponseParser()
        var fields: [String] = []
        try parser.parse(ByteBuffer(string: "HTTP/1.1 200 OK\r\nX-Request-ID: up\r\nContent-Length: 0\r\n\r\n"), method: .GET, requestID: "r1") {
            if case .head(let head, _) = $0 { fields = head.headers.map { "\($0.name)=\($0.value)" } }
            return true
        }
        #expect(fields == ["Content-Length=0", "x-request-id=r1"])
        // Trailers are passed on as sent.
        #expect(
            try Self.parts(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Request-ID: t\r\n\r\n"]).last == "end [X-Request-ID=t]")
    }

    @Test func responsesWithoutABody() throws {
        #expect(
            try Self.expectSplitsAgree("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", method: .HEAD) == [
                "head HTTP/1.1 200 [Content-Length=10]", "end",
            ])
        #expect(try Self.parts(["HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"]) == ["head HTTP/1.1 204 [Content-Length=3]", "end"])
        #expect(try Self.parts(["HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"]).last == "end")
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]) == ["head HTTP/1.1 200 [Content-Length=0]", "end"])
    }

    @Test func aBodyWithoutFramingEndsWithTheConnection() throws {
        let wire = "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end"
        #expect(try Self.expectSplitsAgree(wire, closeAtEnd: true) == ["head HTTP/1.0 200 [Server=old] close", "body until the end", "end"])
        // A transfer coding without chunked is read until the close too (RFC 9112 §6.3).
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz"], closeAtEnd: true).last == "end")
        // A connection that closes mid-message does not end it: that is the caller's reset.
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"], closeAtEnd: true).last == "body short (unfinished)")
    }

    @Test func whetherTheUpstreamKeepsTheConnection() throws {
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 0\r\n\r\n"]).first?.hasSuffix(" close") == true)
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"]).first?.hasSuffix(" close") == false)
        #expect(try Self.parts(["HTTP/1.0 200 OK\r\nConnection:  keep-alive \r\nContent-Length: 0\r\n\r\n"]).first?.hasSuffix(" close") == false)
        #expect(try Self.parts(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]).first?.hasSuffix(" close") == true)
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nX-Connection: close\r\nContent-Length: 0\r\n\r\n"]).first?.hasSuffix(" close") == false)
        // Transfer-Encoding in HTTP/1.0: its framing cannot be trusted, so never keep-alive.
        let old = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        #expect(try Self.parts([old]).first?.hasSuffix(" close") == true)
    }

    @Test func informationalResponsesAreSkipped() throws {
        let wire = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        #expect(try Self.expectSplitsAgree(wire) == ["head HTTP/1.1 201 [Content-Length=2]", "body ok", "end"])
    }

    @Test func bytesAfterAResponseAreReportedNotParsed() throws {
        // A second response in the same read answers no request: parsing stops at the first's end.
        let wire = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"
        #expect(try Self.parts([wire]) == ["head HTTP/1.1 200 [Content-Length=1]", "body a", "end +bytes"])
        // A body sent with the answer to HEAD, and a stray line end after a body.
        #expect(
            try Self.parts(["HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"], method: .HEAD) == [
                "head HTTP/1.1 200 [Content-Length=5]", "end +bytes",
            ])
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na\r\n"]).last == "end +bytes")
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"]).last == "end +bytes")
        // Parsed again from a clean start, the next response is whole.
        #expect(try Self.parts(["HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]) == [
            "head HTTP/1.1 200 [Content-Length=1]", "body a", "end", "head HTTP/1.1 404 [Content-Length=0]", "end",
        ])
    }

    @Test func stopsWhenNobodyWantsTheRest() throws {
        var parser = HTTPResponseParser()
        var seen = 0
        try parser.parse(
            ByteBuffer(string: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"), method: .GET,
            emit: { _ in
                seen += 1
                return false
            })
        #expect(seen == 1)
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "both Content-Length and Transfer-Encoding"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", "differing Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n", "a listed Content-Length that differs"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n", "a listed Content-Length, even of equal values"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", "a repeated Content-Length"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 junk\r\nabc\r\n", "words after a chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;" + String(repeating: "x", count: 5000) + "\r\n", "a chunk line over 4 KiB"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n", "a signed Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "a Content-Length too large"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "chunked not last"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked twice"),
        ("HTTP/2.0 200 OK\r\n\r\n", "another version"),
        ("HTTP/1.1 2x0 OK\r\n\r\n", "a status that is not three digits"),
        ("HTTP/1.1 099 Low\r\n\r\n", "a status below 100"),
        ("HTTP/1.1 200OK\r\n\r\n", "no space after the status"),
        ("NOT HTTP AT ALL\r\n\r\n", "no status line"),
        ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "a protocol switch nobody asked for"),
        ("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "a space in a field name"),
        ("HTTP/1.1 200 OK\r\nName : x\r\n\r\n", "a space before the colon"),
        ("HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n", "a line without a colon"),
        ("HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "an obs-fold continuation"),
        ("HTTP/1.1 200 OK\r\nA: b\u{01}c\r\n\r\n", "a control byte in a value"),
        ("HTTP/1.1 200 OK\r\nA: b\nB: c\r\n\r\n", "a bare LF"),
        ("HTTP/1.1 200 OK\r\nA: b\rB: c\r\n\r\n", "a bare CR"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "a chunk size that is not hex"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY", "chunk data without its CRLF"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n", "a chunk line ending in a bare LF"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n", "a chunk size that overflows"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3x\r\n", "junk after a chunk size"),
    ])
    func malformedResponsesAreErrors(wire: String, why: String) {
        var parser = HTTPResponseParser()
        #expect(throws: HTTPParserError.self, "\(why)") {
            try parser.parse(ByteBuffer(string: wire), method: .GET, emit: { _ in true })
        }
    }

    @Test func limitsOnTheHead() {
        var parser = HTTPResponseParser()
        let huge = "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: HTTPResponseParser.maxHeadSize) + "\r\n\r\n"
        #expect(throws: HTTPParserError.headerOverflow) { try parser.parse(ByteBuffer(string: huge), method: .GET, emit: { _ in true }) }

        var unfinished = HTTPResponseParser()
        let endless = "HTTP/1.1 200 OK\r\n" + String(repeating: "X: y\r\n", count: HTTPResponseParser.maxHeadSize / 6 + 1)
        #expect(throws: HTTPParserError.headerOverflow) {
            try unfinished.parse(ByteBuffer(string: endless), method: .GET, emit: { _ in true })
        }

        var many = HTTPResponseParser()
        let fields = (0...HTTPResponseParser.maxHeaderCount).map { "X-\($0): y\r\n" }.joined()
        #expect(throws: HTTPParserError.headerOverflow) {
            try many.parse(ByteBuffer(string: "HTTP/1.1 200 OK\r\n" + fields + "\r\n"), method: .GET, emit: { _ in true })
        }
    }
}
