import NIOCore
import NIOHTTP1
import Testing

@testable import GantryProxy

struct HTTPRequestParserTests {
    private static func parser() -> HTTPRequestParser {
        HTTPRequestParser(maxHeadSize: 8192, maxHeaderCount: 20)
    }

    /// The parts a parser hands out for `wire`, fed in the given pieces, one per line with the
    /// bodies' bytes joined: what arrives must not depend on how the bytes were split.
    private static func parts(_ pieces: [String]) throws -> [String] {
        var parser = Self.parser()
        var out: [String] = []
        var body = ""
        for piece in pieces {
            try parser.parse(ByteBuffer(string: piece)) { part in
                switch part {
                case .head(let head, let keepAlive):
                    let fields = head.headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
                    out.append("\(head.method.rawValue) \(head.uri) \(head.version) [\(fields)]" + (keepAlive ? "" : " close"))
                case .body(let buffer):
                    body += String(buffer: buffer)
                case .end(let trailers):
                    if !body.isEmpty { out.append("body \(body)") }
                    body = ""
                    out.append("end" + (trailers.map { " [" + $0.map { "\($0.name)=\($0.value)" }.joined(separator: ",") + "]" } ?? ""))
                }
            }
        }
        if !body.isEmpty { out.append("body \(body) (unfinished)") }
        return out
    }

    /// Every way of cutting `wire` in two, and byte by byte, gives the same parts as in one piece.
    private static func expectSplitsAgree(_ wire: String) throws -> [String] {
        let whole = try parts([wire])
        let bytes = Array(wire.utf8)
        for cut in 1..<bytes.count {
            let pieces = [String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)]
            #expect(try parts(pieces) == whole, "cut at \(cut)")
        }
        #expect(try parts(bytes.map { String(decoding: [$0], as: UTF8.self) }) == whole)
        return whole
    }

    /// The bitmap and word-at-a-time checks agree with the byte rules of RFC 9110 (§5.6.2,
    /// §5.5) for every byte, in every position of values around the word size.
    @Test func tokenAndFieldValueChecksAgreeWithTheByteRules() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        #expect((0...255).filter { HTTP1Syntax.isTokenByte(UInt8($0)) != tchar.contains(UInt8($0)) } == [])
        var disagreements: [String] = []
        for length in [1, 7, 8, 9, 16, 23] {
            for position in 0..<length {
                for byte in 0...255 {
                    var bytes = [UInt8](repeating: UInt8(ascii: "v"), count: length)
                    bytes[position] = UInt8(byte)
                    let allowed = byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
                    if bytes.withUnsafeBytes(HTTP1Syntax.isFieldValue) != allowed { disagreements.append("\(length)/\(position)/\(byte)") }
                }
            }
        }
        #expect(disagreements == [])
    }

    @Test func fieldNamesAreCheckedLikeByteByByte() {
        // The rule, byte by byte: token bytes up to the first colon, and at least one of them.
        func expectedName(_ line: [UInt8]) -> Int? {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
            return line[..<colon].allSatisfy(HTTP1Syntax.isTokenByte) ? colon : nil
        }
        var disagreements: [String] = []
        for length in [1, 7, 8, 9, 15, 16, 17, 24] {
            for position in 0..<length {
                for byte in 0...255 {
                    var line = (0..<length).map { [UInt8(ascii: "a"), UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "7")][$0 % 4] }
                    line[position] = UInt8(byte)
                    line += Array(": v".utf8)
                    let found = line.withUnsafeBytes { try? HTTP1Syntax.field($0).name.count }
                    if found != expectedName(line) { disagreements.append("\(length)/\(position)/\(byte)") }
                }
            }
        }
        #expect(disagreements == [])
    }

    @Test func lineEndsAreFoundWhereverTheyAre() {
        var disagreements: [String] = []
        for length in [1, 7, 8, 9, 16, 47, 48, 49, 63, 64, 65, 200] {
            for start in [0, 1, 5, 40] where start < length {
                for lf in [nil, start, start + 1, start + 7, start + 8, start + 15, start + 47, start + 48, length - 1] as [Int?] {
                    if let lf, lf < start || lf >= length { continue }
                    // Bytes that differ from LF in one bit (0x0B, 0x8A) and high bytes must not pass for it.
                    var bytes = (0..<length).map { [UInt8(0x0B), 0x8A, 0xFF, 0x00, 0x61][$0 % 5] }
                    if let lf { bytes[lf] = 0x0A }
                    if let lf, lf + 3 < length { bytes[lf + 3] = 0x0A }  // a second one after it
                    let found = bytes.withUnsafeBytes { HTTP1Syntax.firstLF(in: $0, from: start) }
                    if found != lf { disagreements.append("\(length)/\(start)/\(String(describing: lf)): \(String(describing: found))") }
                }
            }
        }
        #expect(disagreements == [])
    }

    @Test func aRequestWithoutABody() throws {
        let wire = "GET /app/orders?page=2 HTTP/1.1\r\nHost: example.com\r\nX-Up:  spaced value \t\r\n\r\n"
        #expect(try Self.expectSplitsAgree(wire) == ["GET /app/orders?page=2 HTTP/1.1 [Host=example.com,X-Up=spaced value]", "end"])
    }

    @Test func contentLengthBodies() throws {
        let wire = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        #expect(try Self.expectSplitsAgree(wire) == ["POST /up HTTP/1.1 [Host=a,Content-Length=5]", "body hello", "end"])
    }

    @Test func chunkedBodiesWithExtensionsAndTrailers() throws {
        let wire = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n4;name=\"v\"\r\nwiki\r\nA \t; x\r\n0123456789\r\n0\r\nDigest: x\r\n\r\n"
        #expect(
            try Self.expectSplitsAgree(wire) == [
                "POST / HTTP/1.1 [Host=a,Transfer-Encoding=gzip, Chunked]", "body wiki0123456789", "end [Digest=x]",
            ])
    }

    /// Pipelined requests come out one after another, in order; empty lines before a request
    /// line are skipped (RFC 9112 §2.2).
    @Test func pipelinedRequests() throws {
        let wire =
            "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
            + "\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            + "PURGE /3 HTTP/1.0\r\n\r\n"
        #expect(
            try Self.expectSplitsAgree(wire) == [
                "GET /1 HTTP/1.1 [Host=a]", "end",
                "POST /2 HTTP/1.1 [Host=a,Transfer-Encoding=chunked]", "body abc", "end",
                "PURGE /3 HTTP/1.0 [] close", "end",
            ])
    }

    @Test func whetherTheClientKeepsTheConnection() throws {
        func keepAlive(_ version: String, _ fields: String) throws -> Bool {
            try !Self.parts(["GET / \(version)\r\nHost: a\r\n\(fields)\r\n"])[0].hasSuffix(" close")
        }
        #expect(try keepAlive("HTTP/1.1", ""))
        #expect(try !keepAlive("HTTP/1.1", "Connection: upgrade, Close\r\n"))
        #expect(try !keepAlive("HTTP/1.0", ""))
        #expect(try keepAlive("HTTP/1.0", "Connection: keep-alive\r\n"))
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding closes the connection.
        #expect(try !keepAlive("HTTP/1.0", "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n"))
    }

    @Test func methodsAreKnownOrKeptAsSent() throws {
        var methods: [HTTPMethod] = []
        var parser = Self.parser()
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "M-SEARCH"] {
            try parser.parse(ByteBuffer(string: "\(method) / HTTP/1.1\r\nHost: a\r\n\r\n")) { part in
                if case .head(let head, _) = part { methods.append(head.method) }
            }
        }
        #expect(methods == [.GET, .HEAD, .POST, .PUT, .PATCH, .DELETE, .OPTIONS, .PROPFIND, .RAW(value: "M-SEARCH")])
    }

    @Test(arguments: [
        ("G@T / HTTP/1.1\r\n\r\n", "a method that is not a token"),
        ("get / HTTP/1.1\r\n\r\n", "a lowercase method"),
        ("GET /\u{FF} HTTP/1.1\r\n\r\n", "a raw byte above ASCII in the target"),
        (" GET / HTTP/1.1\r\n\r\n", "a space before the method"),
        ("GET  / HTTP/1.1\r\n\r\n", "two spaces after the method"),
        ("GET / HTTP/1.1 \r\n\r\n", "a space after the version"),
        ("GET /a b HTTP/1.1\r\n\r\n", "a space in the target"),
        ("GET /\u{01} HTTP/1.1\r\n\r\n", "a control byte in the target"),
        ("GET /\u{7F} HTTP/1.1\r\n\r\n", "DEL in the target"),
        ("GET / HTTP/1.10\r\n\r\n", "a two-digit minor version (RFC 9112 §2.3)"),
        ("GET / HTTP/1.x\r\n\r\n", "a version that is not a digit (RFC 9112 §2.3)"),
        ("GET / HTTPS/1.1\r\n\r\n", "another protocol's name (RFC 9112 §2.3)"),
        ("GET / http/1.1\r\n\r\n", "a lowercase protocol name"),
        ("GET /\r\n\r\n", "no version (HTTP/0.9)"),
        ("GET / HTTP/1.1\nHost: a\n\n", "bare LF line ends"),
        ("GET / HTTP/1.1\r\nHost: a\n\r\n", "a bare LF after a field"),
        ("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", "a bare CR in a field"),
        ("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "a space in a field name"),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", "a space before the colon"),
        ("GET / HTTP/1.1\r\n: a\r\n\r\n", "an empty field name"),
        ("GET / HTTP/1.1\r\nNoColon\r\n\r\n", "a field line without a colon"),
        ("GET / HTTP/1.1\r\nX: a\u{01}b\r\n\r\n", "a control byte in a value"),
        ("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", "obsolete line folding"),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "Content-Length beside Transfer-Encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "Transfer-Encoding before Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "differing Content-Lengths"),
        ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", "a repeated Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello", "a listed Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello", "a signed Content-Length"),
        ("POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", "a Content-Length too large"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "chunked not the final coding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", "an unknown coding alone"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked twice"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "an invalid chunk size"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", "chunk data without its CRLF"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\nhello\r\n0\r\n\r\n", "junk after a chunk size"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", "BWS not followed by ; (RFC 9112 §7.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b \r\nhello\r\n0\r\n\r\n", "BWS after an extension (RFC 9112 §7.1.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n", "; without a name (RFC 9112 §7.1.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a;\r\nhello\r\n0\r\n\r\n", "a second ; without a name (RFC 9112 §7.1.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\r\nhello\r\n0\r\n\r\n", "= without a value (RFC 9112 §7.1.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a@=b\r\nhello\r\n0\r\n\r\n", "a name that is not a token (RFC 9112 §7.1.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\nhello\r\n0\r\n\r\n", "an unterminated quoted string (RFC 9110 §5.6.4)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\\\r\nhello\r\n0\r\n\r\n", "a backslash at the end (RFC 9110 §5.6.4)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\\\u{7F}\"\r\nhello\r\n0\r\n\r\n", "a quoted DEL (RFC 9110 §5.6.4)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", "text after a quoted string (RFC 9112 §7.1.1)"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "a chunk size that overflows"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n", "an invalid trailer"),
    ])
    func malformedRequestsAreErrors(wire: String, why: String) {
        var parser = Self.parser()
        #expect(throws: HTTPParserError.self, "\(why)") {
            try parser.parse(ByteBuffer(string: wire), emit: { _ in })
        }
    }

    /// RFC 9110 §2.5 and §15.6.6, RFC 9112 §2.3: HTTP/1.2 and later minors read as HTTP/1.1,
    /// another major version is refused as such (505), not as a malformed line.
    @Test func versionsAreReadByMajorAndMinor_RFC9112_2_3() throws {
        #expect(try Self.parts(["GET / HTTP/1.2\r\nHost: a\r\n\r\n"]) == ["GET / HTTP/1.1 [Host=a]", "end"])
        #expect(try Self.parts(["GET / HTTP/1.9\r\nHost: a\r\nConnection: close\r\n\r\n"]) == ["GET / HTTP/1.1 [Host=a,Connection=close] close", "end"])
        for (wire, version) in [("GET / HTTP/2.0\r\n\r\n", "HTTP/2.0"), ("GET / HTTP/0.9\r\n\r\n", "HTTP/0.9"), ("PRI * HTTP/3.1\r\n\r\n", "HTTP/3.1")] {
            var parser = Self.parser()
            #expect(performing: { try parser.parse(ByteBuffer(string: wire), emit: { _ in }) }, throws: { error in
                (error as? UnsupportedHTTPVersion)?.description == version
            })
        }
    }

    /// Errors come as soon as the bytes show them, not when more arrive.
    @Test func errorsDoNotWaitForTheRestOfTheHead() {
        var parser = Self.parser()
        #expect(throws: HTTPParserError.lfExpected) { try parser.parse(ByteBuffer(string: "GET / HTTP/1.1\nHo"), emit: { _ in }) }
    }

    @Test func limitsOnTheHead() {
        var parser = Self.parser()
        let huge = "GET / HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 8192) + "\r\n\r\n"
        #expect(throws: HTTPParserError.headerOverflow) { try parser.parse(ByteBuffer(string: huge), emit: { _ in }) }

        var unfinished = Self.parser()
        let endless = "GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 8192 / 6 + 1)
        #expect(throws: HTTPParserError.headerOverflow) { try unfinished.parse(ByteBuffer(string: endless), emit: { _ in }) }

        var many = Self.parser()
        let fields = (0...20).map { "X-\($0): y\r\n" }.joined()
        #expect(throws: HTTPParserError.headerOverflow) { try many.parse(ByteBuffer(string: "GET / HTTP/1.1\r\n" + fields + "\r\n"), emit: { _ in }) }

        var trailers = Self.parser()
        let bigTrailer = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + String(repeating: "t", count: 8192) + "\r\n\r\n"
        #expect(throws: HTTPParserError.headerOverflow) { try trailers.parse(ByteBuffer(string: bigTrailer), emit: { _ in }) }

        var chunkLine = Self.parser()
        let longLine = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: HTTP1Syntax.maxChunkLineSize)
        #expect(throws: HTTPParserError.invalidChunkSize) { try chunkLine.parse(ByteBuffer(string: longLine), emit: { _ in }) }
    }
}
