import Foundation
import GantryCore
import GantryTestSupport
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    static let partnerKey = "k-partner-123"
    static let guestKey = "k-guest-456"

    static func policiesYAML(_ ports: [Int]) -> String {
        """
        loadBalancer: {listeners: [{name: http, port: 0}]}
        accessLog: {enabled: false}
        gateway:
          policies:
            - name: keys
              apiKey:
                consumers:
                  - {name: acme, groups: [partners], keySHA256: [\(APIKeys.digest(of: partnerKey))]}
                  - {name: guest, groups: [guests], keySHA256: [\(APIKeys.digest(of: guestKey))]}
            - {name: partners-only, acl: {allow: [partners]}}
            - {name: per-consumer, rateLimit: {requests: 100, per: 1s, key: {consumer: true}}}
            - {name: office, ipFilter: {allow: [10.0.0.0/8, "2001:db8::/32"]}}
            - {name: local, ipFilter: {allow: [127.0.0.0/8], deny: [127.0.0.2]}}
            - name: browser
              cors: {origins: [https://app.example.com], methods: [GET, PUT], headers: [Authorization], exposedHeaders: [X-Request-ID], credentials: true}
            - name: strict
              validate: {methods: [POST], requiredHeaders: [X-Tenant], requiredQuery: [page], contentTypes: [application/json], maxBodySize: 16}
            - name: tidy
              transform:
                stripPrefix: /api
                requestHeaders: {set: [{name: X-From, value: gantry}], remove: [X-Debug]}
                responseHeaders: {add: [{name: Deprecation, value: "@1735689600"}, {name: Sunset, value: "Wed, 31 Dec 2025 23:59:59 GMT"}]}
            - {name: v1-to-v2, transform: {rewrite: {regex: "^/v1/(.*)$", replacement: "/v2/$1"}}}
            - {name: moved, redirect: {location: "https://example.com/new${path}${query}", status: 301}}
            - {name: fixed, respond: {status: 200, body: "all good", contentType: text/plain}}
            - name: order-shape
              validate:
                jsonSchema: '{"type": "object", "required": ["item", "quantity"], "additionalProperties": false, "properties": {"item": {"type": "string", "minLength": 1}, "quantity": {"type": "integer", "minimum": 1, "maximum": 10}, "tags": {"type": "array", "items": {"enum": ["gift", "express"]}}}}'

          routes:
            - {host: example.com, path: /partners, service: app, policies: [keys, partners-only, per-consumer]}
            - {host: example.com, path: /office, service: app, policies: [office]}
            - {host: example.com, path: /local, service: app, policies: [local]}
            - {host: example.com, path: /browser, service: app, policies: [browser]}
            - {host: example.com, path: /strict, service: app, policies: [strict]}
            - {host: example.com, path: /api, service: app, policies: [tidy]}
            - {host: example.com, path: /v1, service: app, policies: [v1-to-v2]}
            - {host: example.com, path: /old, service: app, policies: [moved]}
            - {host: example.com, path: /status, service: app, policies: [fixed]}
            - {host: example.com, path: /orders, service: app, policies: [order-shape]}
        services:
          - name: app
            endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
        """
    }

    private func headers(_ response: RawResponse) throws -> [(String, String)] {
        (try response.json()["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
    }

    @Test func apiKeysAndACLs() async throws {
        try await withProxy(yaml: Self.policiesYAML) { harness in
            let partner = try await harness.get("/partners/x", headers: ["X-API-Key: \(Self.partnerKey)", "X-Consumer: someone-else"])
            #expect(partner.status == 200)
            let echoed = try headers(partner)
            #expect(echoed.filter { $0.0 == "x-consumer" }.map(\.1) == ["acme"])
            #expect(!echoed.contains { $0.0 == "x-api-key" })  // the key stays at the gateway
            #expect(partner.header("RateLimit-Policy") == #""per-consumer";q=100;w=1"#)
            let before = harness.upstreamRequestCount
            #expect(try await harness.get("/partners/x", headers: ["X-API-Key: \(Self.guestKey)"]).status == 403)
            #expect(try await harness.get("/partners/x", headers: ["X-API-Key: nope"]).status == 401)
            #expect(try await harness.get("/partners/x").status == 401)
            #expect(harness.upstreamRequestCount == before)
        }
    }

    @Test func ipFiltersByCIDR() async throws {
        try await withProxy(yaml: Self.policiesYAML) { harness in
            let refused = try await harness.get("/office/x")
            #expect(refused.status == 403)
            #expect(try refused.json()["message"] as? String == "client address 127.0.0.1 is not allowed")
            #expect(try await harness.get("/local/x").status == 200)
        }
    }

    @Test func corsPreflightsAreAnsweredAndResponsesMarked() async throws {
        try await withProxy(yaml: Self.policiesYAML) { harness in
            let before = harness.upstreamRequestCount
            let preflight = try harness.connect()
            try preflight.send(
                request([
                    "OPTIONS /browser/x HTTP/1.1", "Host: example.com", "Origin: https://app.example.com",
                    "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: authorization",
                ]))
            let answer = try await preflight.readResponse()
            #expect(answer.status == 204)
            #expect(answer.header("Access-Control-Allow-Origin") == "https://app.example.com")
            #expect(answer.header("Access-Control-Allow-Methods") == "GET, PUT")
            #expect(answer.header("Access-Control-Allow-Headers") == "authorization")
            #expect(answer.header("Access-Control-Allow-Credentials") == "true")
            #expect(answer.header("Content-Length") == nil)
            let refused = try harness.connect()
            try refused.send(
                request(["OPTIONS /browser/x HTTP/1.1", "Host: example.com", "Origin: https://evil.example", "Access-Control-Request-Method: GET"]))
            #expect(try await refused.readResponse().status == 403)
            #expect(harness.upstreamRequestCount == before, "a preflight reached an upstream")

            let actual = try await harness.get("/browser/x", headers: ["Origin: https://app.example.com"])
            #expect(actual.status == 200)
            #expect(actual.header("Access-Control-Allow-Origin") == "https://app.example.com")
            #expect(actual.header("Access-Control-Expose-Headers") == "X-Request-ID")
            let foreign = try await harness.get("/browser/x", headers: ["Origin: https://evil.example"])
            #expect(foreign.header("Access-Control-Allow-Origin") == nil)
        }
    }

    @Test func validationRefusesBadRequestsBeforeTheUpstream() async throws {
        try await withProxy(yaml: Self.policiesYAML) { harness in
            func post(_ lines: [String], body: String = "{}") async throws -> RawResponse {
                let connection = try harness.connect()
                try connection.send(request(lines + ["Content-Length: \(body.utf8.count)"]) + body)
                return try await connection.readResponse()
            }
            let good = ["POST /strict?page=1 HTTP/1.1", "Host: example.com", "X-Tenant: t1", "Content-Type: application/json; charset=utf-8"]
            let before = harness.upstreamRequestCount
            #expect(try await harness.get("/strict?page=1", headers: ["X-Tenant: t1"]).status == 405)
            #expect(try await post(["POST /strict?page=1 HTTP/1.1", "Host: example.com", "Content-Type: application/json"]).status == 400)
            #expect(try await post(["POST /strict HTTP/1.1", "Host: example.com", "X-Tenant: t1", "Content-Type: application/json"]).status == 400)
            #expect(try await post(["POST /strict?page=1 HTTP/1.1", "Host: example.com", "X-Tenant: t1", "Content-Type: text/plain"]).status == 415)
            #expect(try await post(good, body: String(repeating: "x", count: 17)).status == 413)
            let chunked = try harness.connect()
            try chunked.send(request(good + ["Transfer-Encoding: chunked"]) + "8\r\n12345678\r\n")
            try chunked.send("9\r\n123456789\r\n0\r\n\r\n")
            #expect(try await chunked.readResponse().status == 413)
            #expect(harness.upstreamRequestCount <= before + 1)  // the chunked one may have started upstream
            #expect(try await post(good).status == 200)
        }
    }

    @Test func jsonBodiesAreCheckedAgainstTheSchema() async throws {
        try await withProxy(yaml: Self.policiesYAML) { harness in
            func post(_ body: String, chunked: Bool = false) async throws -> RawResponse {
                let connection = try harness.connect()
                let head = ["POST /orders HTTP/1.1", "Host: example.com", "Content-Type: application/json"]
                if chunked {
                    let half = body.utf8.count / 2
                    let first = String(body.prefix(half)), rest = String(body.dropFirst(half))
                    try connection.send(request(head + ["Transfer-Encoding: chunked"]))
                    try connection.send(String(first.utf8.count, radix: 16) + "\r\n" + first + "\r\n")
                    try connection.send(String(rest.utf8.count, radix: 16) + "\r\n" + rest + "\r\n0\r\n\r\n")
                } else {
                    try connection.send(request(head + ["Content-Length: \(body.utf8.count)"]) + body)
                }
                return try await connection.readResponse()
            }
            let before = harness.upstreamRequestCount
            let cases: [(String, String)] = [
                (#"{"item": "mug"}"#, "$.quantity: is required"),
                (#"{"item": "mug", "quantity": 11}"#, "$.quantity: must be at most 10"),
                (#"{"item": "mug", "quantity": 1.5}"#, "$.quantity: expected integer, found number"),
                (#"{"item": "", "quantity": 1}"#, "$.item: must be at least 1 characters long"),
                (#"{"item": "mug", "quantity": 1, "tags": ["gift", "slow"]}"#, #"$.tags[1]: must be one of "gift", "express""#),
                (#"{"item": "mug", "quantity": 1, "color": "red"}"#, "$.color: is not allowed"),
                ("[1, 2]", "$: expected object, found array"),
                ("{not json", "the body is not JSON"),
            ]
            for (body, message) in cases {
                let response = try await post(body)
                #expect(response.status == 400, "\(body)")
                #expect(try response.json()["message"] as? String == message, "\(body)")
            }
            #expect(harness.upstreamRequestCount == before, "an invalid body reached an upstream")
            let good = #"{"item": "mug", "quantity": 2, "tags": ["gift"]}"#
            let accepted = try await post(good)
            #expect(accepted.status == 200)
            #expect(try accepted.json()["body"] as? String == good)
            let acceptedChunked = try await post(good, chunked: true)
            #expect(acceptedChunked.status == 200)
            #expect(try acceptedChunked.json()["body"] as? String == good)
        }
    }

    @Test func transformsRewritesRedirectsAndFixedResponses() async throws {
        try await withProxy(yaml: Self.policiesYAML) { harness in
            let api = try await harness.get("/api/users?x=1", headers: ["X-Debug: 1", "X-From: client"])
            #expect(try api.json()["path"] as? String == "/users")
            #expect(try api.json()["query"] as? String == "x=1")
            let echoed = try headers(api)
            #expect(echoed.filter { $0.0 == "x-from" }.map(\.1) == ["gantry"])
            #expect(!echoed.contains { $0.0 == "x-debug" })
            #expect(api.header("Deprecation") == "@1735689600")
            #expect(api.header("Sunset") == "Wed, 31 Dec 2025 23:59:59 GMT")

            #expect(try await harness.get("/v1/orders/7").json()["path"] as? String == "/v2/orders/7")

            let before = harness.upstreamRequestCount
            let moved = try await harness.get("/old/page?q=2")
            #expect(moved.status == 301)
            #expect(moved.header("Location") == "https://example.com/new/old/page?q=2")
            let fixed = try await harness.get("/status")
            #expect(fixed.status == 200)
            #expect(String(decoding: fixed.body, as: UTF8.self) == "all good")
            #expect(fixed.header("Content-Type") == "text/plain")
            #expect(harness.upstreamRequestCount == before)
        }
    }
}
