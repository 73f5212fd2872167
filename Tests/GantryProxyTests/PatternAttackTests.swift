import Foundation
import GantryTestSupport
import Testing

@testable import GantryProxy

/// The classic catastrophic regular expressions, attacked with the inputs that make a
/// backtracking matcher run for minutes, at each place a pattern meets client bytes: a route's
/// header and query conditions, a rewrite, and a JSON Schema's `pattern`. Every attack is
/// answered, and so is an ordinary request sent beside them, on the same two event loops.
extension LiveProxyTests {
    @Test func catastrophicPatternsNeverHoldAnEventLoop() async throws {
        let yaml = { (ports: [Int]) in
            """
            accessLog: {enabled: false}
            loadBalancer:
              listeners: [{name: http, port: 0}]
              limits: {maxHeadSize: 128KiB, maxURILength: 64KiB}
            gateway:
              policies:
                - {name: rewrite, transform: {rewrite: {regex: "^/rewrite/(a+)+$", replacement: "/done"}}}
                - name: schema
                  validate: {jsonSchema: '{"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|a)*$"}}}'}
              routes:
                - {path: /header, headers: [{name: X-Attack, regex: "^(a+)+$"}], service: app}
                - {path: /query, queryParams: [{name: q, regex: "^(a|aa)+$"}], service: app}
                - {path: /rewrite, policies: [rewrite], service: app}
                - {path: /schema, policies: [schema], service: app}
                - {path: /, service: app}
            services:
              - {name: app, endpoints: [127.0.0.1:\(ports[0])]}
            """
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let evil = String(repeating: "a", count: 40_000) + "!"
            let body = #"{"s": "\#(evil)"}"#
            let attacks = [
                request(["GET /header HTTP/1.1", "Host: a", "X-Attack: \(evil)"]),
                request(["GET /query?q=\(evil) HTTP/1.1", "Host: a"]),
                request(["GET /rewrite/\(evil) HTTP/1.1", "Host: a"]),
                request(["POST /schema HTTP/1.1", "Host: a", "Content-Type: application/json", "Content-Length: \(body.utf8.count)"]) + body,
            ]
            var connections: [RawHTTPConnection] = []
            for attack in attacks {
                let connection = try harness.connect()
                try connection.send(attack)
                connections.append(connection)
            }
            // Meanwhile, on another connection, ordinary requests are answered.
            for _ in 0..<4 { #expect(try await harness.get("/ordinary").status == 200) }
            var statuses: [Int] = []
            for connection in connections { statuses.append(try await connection.readResponse(timeout: 10).status) }
            // No rule matches the header, query or rewrite attacks (they fall to `/` or 404 as
            // the rules say); the schema refuses the body.
            #expect(statuses == [200, 200, 200, 400], "\(statuses)")
        }
    }
}
