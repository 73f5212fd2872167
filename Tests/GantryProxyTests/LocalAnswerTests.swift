import GantryConfig
import GantryCore
import GantryTestSupport
import Testing

@testable import GantryProxy

/// Every kind of answer gantry gives itself lands in its own series,
/// `gantry_local_responses_total{reason, code}`, and only requests that broke HTTP's rules or the
/// edge's limits count as malformed.
extension LiveProxyTests {
    @Test func eachKindOfLocalAnswerIsCountedUnderItsReason() async throws {
        let closed = try await Self.freePort()
        let httpsPort = try await Self.freePort()
        let state = Self.scratch()
        try await withProxy(yaml: { ports in
            """
            runtime: {stateDirectory: \(state)}
            accessLog: {enabled: false}
            loadBalancer:
              listeners:
                - {name: http, port: 0}
                - {name: https, port: \(httpsPort), tls: {selfSigned: [example.com]}}
                - {name: redirecting, port: 0, redirectTo: https}
              limits: {maxBodySize: 1KiB}
            gateway:
              policies:
                - {name: token, jwt: {keys: [{jwksFile: \(Self.jwksFile())}]}}
                - {name: nobody, ipFilter: {deny: [127.0.0.0/8]}}
                - {name: browsers, cors: {origins: ["https://app.example.com"]}}
                - {name: moved, redirect: {location: /new}}
                - {name: teapot, respond: {status: 418, body: short and stout}}
                - {name: strict, validate: {methods: [GET, POST], requiredHeaders: [X-Tenant], contentTypes: [application/json]}}
                - {name: shaped, validate: {jsonSchema: '{"type": "object"}'}}
                - {name: once, rateLimit: {requests: 1, per: 1h}}
              routes:
                - {path: /token, service: app, policies: [token]}
                - {path: /nobody, service: app, policies: [nobody]}
                - {path: /cors, service: app, policies: [browsers]}
                - {path: /moved, service: app, policies: [moved]}
                - {path: /teapot, service: app, policies: [teapot]}
                - {path: /strict, service: app, policies: [strict]}
                - {path: /shaped, service: app, policies: [shaped]}
                - {path: /once, service: app, policies: [once]}
                - {path: /empty, service: empty}
                - {path: /down, service: down}
            services:
              - {name: app, endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]}
              - {name: empty, endpoints: [127.0.0.1:\(ports[0])]}
              - {name: down, endpoints: [127.0.0.1:\(closed)], retries: {attempts: 0}}
            """
        }) { (harness: ProxyHarness) async throws in
            harness.plane.setEndpoints([], forService: "empty")
            await harness.plane.settled()
            let answers: [(reason: LocalReason, code: Int, request: String, port: Int?)] = [
                (.noRoute, 404, request(["GET /nowhere HTTP/1.1", "Host: a"]), nil),
                (.malformed, 400, request(["GET / HTTP/1.1", "Host: a", "Host: b"]), nil),
                (.headerTooLarge, 431, request(["GET / HTTP/1.1", "Host: a", "X-Big: " + String(repeating: "b", count: 70_000)]), nil),
                (.uriTooLong, 414, request(["GET /" + String(repeating: "u", count: 9000) + " HTTP/1.1", "Host: a"]), nil),
                (.unsupportedTransferCoding, 501, request(["POST /token HTTP/1.1", "Host: a", "Transfer-Encoding: gzip, chunked"]), nil),
                (.payloadTooLarge, 413, request(["POST /token HTTP/1.1", "Host: a", "Content-Length: 5000"]), nil),
                (.httpsRedirect, 308, request(["GET /x HTTP/1.1", "Host: example.com"]), harness.ports[2]),
                (.unauthorized, 401, request(["GET /token HTTP/1.1", "Host: a"]), nil),
                (.forbidden, 403, request(["GET /nobody HTTP/1.1", "Host: a"]), nil),
                (.corsPreflight, 204, request(["OPTIONS /cors HTTP/1.1", "Host: a", "Origin: https://app.example.com", "Access-Control-Request-Method: POST"]), nil),
                (.corsRefused, 403, request(["OPTIONS /cors HTTP/1.1", "Host: a", "Origin: https://evil.example", "Access-Control-Request-Method: POST"]), nil),
                (.redirect, 308, request(["GET /moved HTTP/1.1", "Host: a"]), nil),
                (.fixedResponse, 418, request(["GET /teapot HTTP/1.1", "Host: a"]), nil),
                (.methodNotAllowed, 405, request(["DELETE /strict HTTP/1.1", "Host: a"]), nil),
                (.invalidRequest, 400, request(["GET /strict HTTP/1.1", "Host: a"]), nil),
                (.unsupportedMediaType, 415, request(["POST /strict HTTP/1.1", "Host: a", "X-Tenant: t", "Content-Type: text/plain", "Content-Length: 2"]) + "hi", nil),
                (.invalidBody, 400, request(["POST /shaped HTTP/1.1", "Host: a", "Content-Type: application/json", "Content-Length: 2"]) + "[]", nil),
                (.noEndpoint, 503, request(["GET /empty HTTP/1.1", "Host: a"]), nil),
                (.upstreamConnectFailure, 502, request(["GET /down HTTP/1.1", "Host: a"]), nil),
            ]
            for answer in answers {
                let connection = try harness.connect(port: answer.port)
                try connection.send(answer.request)
                let status = try await connection.readResponse().status
                #expect(status == answer.code, "\(answer.reason)")
            }
            #expect(try await harness.get("/once").status == 200)
            #expect(try await harness.get("/once").status == 429)

            let series = await harness.plane.requestSeries()
            for (reason, code) in answers.map({ ($0.reason, $0.code) }) + [(.rateLimited, 429)] {
                #expect(series.local[RequestSeries.LocalKey(reason: reason.label, code: code)] == 1, "\(reason)")
            }
            #expect(series.local.values.reduce(0, +) == answers.count + 1)
            let counters = await harness.plane.counters()
            #expect(counters[.malformedRequests] == 5)  // bad_request, header_too_large, uri_too_long, the coding, the size
            #expect(counters[.noRoute] == 1)
            #expect(counters[.unauthorized] == 1)
            #expect(counters[.rateLimited] == 1)
            #expect(counters[.redirects] == 1)
            #expect(counters[.noEndpoint] == 1)
        }
    }

    static func jwksFile() -> String {
        let file = GantryProcess.scratchDirectory().appendingPathComponent("local-answers.jwks.json")
        try! #"{"keys":[{"kty":"oct","k":"\#(Base64URL.encode(secret))"}]}"#.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}
