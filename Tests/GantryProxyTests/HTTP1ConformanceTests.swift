import GantryTestSupport
import Testing

@testable import GantryProxy

/// RFC 9110 and 9112, read to the letter where a request is well-formed but unusual. The
/// malformed ones are in ``malformedRequestsNeverReachAnUpstream(_:)``.
extension LiveProxyTests {
    /// RFC 9110 §2.5, RFC 9112 §2.3: a request of a higher HTTP/1 minor version is handled as
    /// HTTP/1.1, keep-alive included, and goes upstream as HTTP/1.1.
    @Test func aHigherMinorVersionIsHandledAsHTTP11_RFC9110_2_5() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /minor HTTP/1.7", "Host: a"]))
            let first = try await connection.readResponse()
            #expect(first.status == 200)
            #expect(first.version == "HTTP/1.1")
            #expect(first.header("connection") == nil)
            #expect(try first.json()["version"] as? String == "HTTP/1.1")
            try connection.send(request(["GET /again HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().status == 200, "the connection was kept alive as HTTP/1.1's is")
        }
    }

    /// RFC 9112 §3.2.4: `OPTIONS *` asks about the server. With no route for `*` gantry answers
    /// it: 200, the methods it forwards in `Allow`, no body, and the connection stays open.
    @Test func optionsAsteriskIsAnsweredByTheGateway_RFC9112_3_2_4() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["OPTIONS * HTTP/1.1", "Host: a"]))
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            #expect(response.header("allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
            #expect(response.header("content-length") == "0")
            #expect(response.header("content-type") == nil)
            #expect(response.body.isEmpty)
            try connection.send(request(["GET /after HTTP/1.1", "Host: a"]))
            #expect(try await connection.readResponse().status == 200)
            #expect(harness.upstreamRequestCount == 1, "OPTIONS * was answered by gantry, not forwarded")
        }
    }

    /// RFC 9112 §3.2.4: a route whose path is `*` takes `OPTIONS *` to its service, as sent;
    /// prefix `/` never matches the asterisk.
    @Test func optionsAsteriskGoesToTheRouteThatAsksForIt_RFC9112_3_2_4() async throws {
        let yaml = { (ports: [Int]) in
            """
            loadBalancer:
              listeners: [{name: http, port: 0}]
            gateway:
              routes:
                - {path: /, service: app}
                - {path: "*", service: app}
            services:
              - name: app
                endpoints: [127.0.0.1:\(ports[0])]
            """
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let connection = try harness.connect()
            try connection.send(request(["OPTIONS * HTTP/1.1", "Host: a"]))
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            let echo = try response.json()
            #expect(echo["method"] as? String == "OPTIONS")
            #expect(echo["path"] as? String == "*")
            #expect(harness.upstreamRequestCount == 1)
        }
    }

    /// RFC 9110 §9.3.6, §15.5.6: CONNECT asks for a tunnel. An authority-form one is refused
    /// with 405 and `Allow`, the connection closes, and any bytes the client sent for the tunnel
    /// never reach an upstream.
    @Test func connectIsRefusedWithAllowAndNeverForwarded_RFC9110_9_3_6() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            try connection.send(request(["CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"]) + "GET /tunnelled HTTP/1.1\r\nHost: a\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 405)
            #expect(response.header("allow") == "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
            #expect(try response.json()["error"] as? String == "connect_refused")
            #expect(await connection.waitForClose())
            #expect(harness.upstreamRequestCount == 0)
        }
    }

    /// RFC 9112 §7.1.1: chunk extensions in every form the grammar allows are read (and
    /// dropped), and the body arrives whole.
    @Test func chunkExtensionsTheGrammarAllowsAreAccepted_RFC9112_7_1_1() async throws {
        try await withProxy(upstreams: 1) { harness in
            let connection = try harness.connect()
            let lines = ["3;a", "2 ; name = value", "1;q=\"a \\\" ; b\";t=tok", "1\t;x"]
            let body = lines.enumerated().map { index, line in "\(line)\r\n" + ["hel", "lo", " ", "!"][index] + "\r\n" }.joined()
            try connection.send(request(["POST /ext HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"]) + body + "0;last=\"x\"\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            #expect(try response.json()["body"] as? String == "hello !")
        }
    }
}
