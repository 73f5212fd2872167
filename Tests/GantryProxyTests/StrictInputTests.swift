import GantryTestSupport
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    struct Malformed: CustomTestStringConvertible, Sendable {
        let name: String
        let bytes: String
        let status: Int
        var testDescription: String { name }
    }

    static let malformed: [Malformed] = [
        Malformed(
            name: "Content-Length and Transfer-Encoding together",
            bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 400),
        Malformed(name: "two different Content-Lengths", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", status: 400),
        Malformed(name: "a Content-Length that is not a number", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello", status: 400),
        Malformed(name: "Transfer-Encoding not ending in chunked", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", status: 400),
        Malformed(name: "an unknown Transfer-Encoding", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", status: 400),
        Malformed(name: "an invalid chunk size", bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", status: 400),
        Malformed(name: "a space in a header name", bytes: "GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", status: 400),
        Malformed(name: "a space before the colon", bytes: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", status: 400),
        Malformed(name: "a control character in a value", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-Evil: a\u{01}b\r\n\r\n", status: 400),
        Malformed(name: "obsolete line folding", bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-Long: a\r\n  folded\r\n\r\n", status: 400),
        Malformed(name: "bare LF line ends", bytes: "GET / HTTP/1.1\nHost: a\n\n", status: 400),
        Malformed(name: "HTTP/1.1 without Host", bytes: "GET / HTTP/1.1\r\n\r\n", status: 400),
        Malformed(name: "two Host headers", bytes: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400),
        Malformed(name: "an invalid Host", bytes: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400),
        // RFC 9112 §2.3, RFC 9110 §15.6.6: another major version is not HTTP/1 (505); a version
        // that is not DIGIT "." DIGIT is no version at all (400).
        Malformed(name: "HTTP/2.0 on an HTTP/1 connection (RFC 9112 §2.3)", bytes: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505),
        Malformed(name: "HTTP/3.7 (RFC 9112 §2.3)", bytes: "GET / HTTP/3.7\r\nHost: a\r\n\r\n", status: 505),
        Malformed(name: "HTTP/1.10, two digits (RFC 9112 §2.3)", bytes: "GET / HTTP/1.10\r\nHost: a\r\n\r\n", status: 400),
        Malformed(name: "http/1.1 in lowercase (RFC 9112 §2.3)", bytes: "GET / http/1.1\r\nHost: a\r\n\r\n", status: 400),
        // RFC 9112 §3.2.3, RFC 9110 §9.3.6: CONNECT is answered here, whatever its target.
        Malformed(name: "CONNECT with an origin-form target (RFC 9112 §3.2.3)", bytes: "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Malformed(
            name: "CONNECT with an absolute-form target (RFC 9112 §3.2.3)", bytes: "CONNECT http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Malformed(
            name: "CONNECT with an authority-form target (RFC 9110 §9.3.6)", bytes: "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
            status: 405),
        Malformed(name: "CONNECT to an IPv6 authority (RFC 9110 §9.3.6)", bytes: "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n", status: 405),
        // RFC 9112 §7.1: chunk-size [ chunk-ext ], nothing else on the line.
        Malformed(name: "whitespace after a chunk size without an extension (RFC 9112 §7.1)", bytes: chunked("5 \r\nhello\r\n0\r\n\r\n"), status: 400),
        Malformed(name: "a chunk extension without a name (RFC 9112 §7.1.1)", bytes: chunked("5;\r\nhello\r\n0\r\n\r\n"), status: 400),
        Malformed(name: "a chunk extension that is only a value (RFC 9112 §7.1.1)", bytes: chunked("5;=x\r\nhello\r\n0\r\n\r\n"), status: 400),
        Malformed(name: "a chunk extension with an empty value (RFC 9112 §7.1.1)", bytes: chunked("5;a=\r\nhello\r\n0\r\n\r\n"), status: 400),
        Malformed(
            name: "an unterminated quoted chunk extension (RFC 9110 §5.6.4)", bytes: chunked("5;a=\"open\r\nhello\r\n0\r\n\r\n"), status: 400),
        Malformed(
            name: "a bad escape in a quoted chunk extension (RFC 9110 §5.6.4)", bytes: chunked("5;a=\"x\\\u{01}\"\r\nhello\r\n0\r\n\r\n"),
            status: 400),
        Malformed(name: "two chunk-extension values (RFC 9112 §7.1.1)", bytes: chunked("5;a=b c\r\nhello\r\n0\r\n\r\n"), status: 400),
        Malformed(name: "a last chunk with a stray word (RFC 9112 §7.1)", bytes: chunked("5\r\nhello\r\n0 x\r\n\r\n"), status: 400),
        Malformed(name: "an invalid method", bytes: "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Malformed(name: "a lowercase method", bytes: "post / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", status: 400),
        Malformed(name: "a repeated Content-Length", bytes: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", status: 400),
        Malformed(name: "a raw byte above ASCII in the path", bytes: "GET /caf\u{E9} HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Malformed(
            name: "a transfer coding besides chunked",
            bytes: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501),
        Malformed(name: "a path above the root", bytes: "GET /../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Malformed(name: "an asterisk target for GET", bytes: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", status: 400),
        Malformed(
            name: "a head over 60 KiB",
            bytes: "GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "b", count: 70_000))\r\n\r\n", status: 431),
        Malformed(
            name: "more than 100 headers",
            bytes: "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<120).map { "X-H\($0): v\r\n" }.joined() + "\r\n", status: 431),
        Malformed(name: "a URI over 8 KiB", bytes: "GET /\(String(repeating: "u", count: 9000)) HTTP/1.1\r\nHost: a\r\n\r\n", status: 414),
    ]

    /// A chunked POST whose body is `body`.
    static func chunked(_ body: String) -> String {
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    }

    @Test(arguments: malformed)
    func malformedRequestsNeverReachAnUpstream(_ input: Malformed) async throws {
        try await withProxy(upstreams: 1) { harness in
            // Warm the pool, so a pooled connection would be at hand if admission let anything through.
            #expect(try await harness.get("/warm").status == 200)
            let connection = try harness.connect()
            try connection.send(input.bytes)
            let response = try await connection.readResponse()
            #expect(response.status == input.status)
            #expect(response.header("connection") == "close")
            #expect(response.header("x-request-id") != nil)
            #expect(await connection.waitForClose())
            try await Task.sleep(for: .milliseconds(50))  // give a leak the chance to show
            #expect(harness.upstreamRequestCount == 1, "the malformed request reached the upstream")
        }
    }

    @Test func aMalformedRequestAfterAGoodOneOnTheSameConnection() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /good HTTP/1.1", "Host: a"]) + "GET /bad HTTP/1.1\r\nBad Header: x\r\n\r\n")
            #expect(try await connection.readResponse().status == 200)
            #expect(try await connection.readResponse().status == 400)
            #expect(await connection.waitForClose())
            #expect(harness.upstreamRequestCount == 1)

            // After HEAD, the 400 still carries its body: it answers the bad request, not HEAD.
            let afterHEAD = try harness.connect()
            try afterHEAD.send(request(["HEAD /good HTTP/1.1", "Host: a"]) + "GET /bad HTTP/1.1\r\nBad Header: x\r\n\r\n")
            #expect(try await afterHEAD.readResponse(head: true).status == 200)
            let bad = try await afterHEAD.readResponse()
            #expect(bad.status == 400)
            #expect(try bad.json()["error"] as? String == "bad_request")
        }
    }
}
