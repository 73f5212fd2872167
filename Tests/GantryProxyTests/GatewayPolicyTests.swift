import Crypto
import Foundation
import GantryCore
import GantryTestSupport
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    static let secret = Data("a-shared-secret-long-enough-for-hs256".utf8)

    /// An HS256 token with these claims, signed with `secret`.
    static func token(_ claims: [String: Any], secret: Data = LiveProxyTests.secret) throws -> String {
        let header = Base64URL.encode(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let body = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(body)".utf8), using: SymmetricKey(data: secret))
        return "\(header).\(body).\(Base64URL.encode(Data(mac)))"
    }

    static func gatewayYAML(_ ports: [Int]) -> String {
        let jwks = GantryProcess.scratchDirectory().appendingPathComponent("keys.jwks.json")
        let key = #"{"keys":[{"kty":"oct","k":"\#(Base64URL.encode(secret))"}]}"#
        try! key.write(to: jwks, atomically: true, encoding: .utf8)
        return """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            accessLog: {enabled: false}
            gateway:
              policies:
                - name: token
                  jwt:
                    keys: [{jwksFile: \(jwks.path)}]
                    issuer: test
                    forwardClaims: [{claim: sub, header: X-User-ID}, {claim: plan, header: X-Plan}]
                - name: five-per-minute
                  rateLimit: {requests: 5, per: 1m, key: {claim: sub}}
              routes:
                - {host: example.com, path: /app, service: app, policies: [token, five-per-minute]}
                - {host: example.com, path: /open, service: app}
            services:
              - name: app
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
    }

    @Test func jwtPolicyChecksTokensAndForwardsClaims() async throws {
        try await withProxy(yaml: Self.gatewayYAML) { harness in
            let exp = Date().timeIntervalSince1970 + 300
            let good = try Self.token(["sub": "ada", "plan": "pro", "iss": "test", "exp": exp])
            let ok = try await harness.get("/app/x", headers: ["Authorization: Bearer \(good)", "X-User-ID: root", "x-plan: free"])
            #expect(ok.status == 200)
            let echoed = (try ok.json()["headers"] as? [[String]] ?? []).map { ($0[0].lowercased(), $0[1]) }
            #expect(echoed.filter { $0.0 == "x-user-id" }.map(\.1) == ["ada"])
            #expect(echoed.filter { $0.0 == "x-plan" }.map(\.1) == ["pro"])

            let before = harness.upstreamRequestCount
            let missing = try await harness.get("/app/x")
            #expect(missing.status == 401)
            #expect(missing.header("WWW-Authenticate") == #"Bearer realm="gantry""#)
            let expired = try await harness.get("/app/x", headers: ["Authorization: Bearer \(try Self.token(["sub": "ada", "iss": "test", "exp": 1000]))"])
            #expect(expired.status == 401)
            #expect(expired.header("WWW-Authenticate")?.contains(#"error="invalid_token""#) == true)
            #expect(expired.header("WWW-Authenticate")?.contains("expired") == true)
            let forged = try await harness.get(
                "/app/x", headers: ["Authorization: Bearer \(try Self.token(["sub": "ada", "iss": "test"], secret: Data("guess".utf8)))"])
            #expect(forged.status == 401)
            let wrongIssuer = try await harness.get("/app/x", headers: ["Authorization: Bearer \(try Self.token(["sub": "ada", "iss": "evil"]))"])
            #expect(wrongIssuer.status == 401)
            #expect(harness.upstreamRequestCount == before, "a refused request reached an upstream")
            #expect(try await harness.get("/open/x").status == 200)  // routes without the policy are open
        }
    }

    @Test func rateLimitIsExactAcrossLoopsAndPerKey() async throws {
        try await withProxy(yaml: Self.gatewayYAML) { harness in
            let ada = "Authorization: Bearer \(try Self.token(["sub": "ada", "iss": "test"]))"
            var statuses: [Int] = []
            var last: RawResponse?
            for _ in 0..<8 {  // each on a new connection, so they spread over both event loops
                let response = try await harness.get("/app/x", headers: [ada])
                statuses.append(response.status)
                last = response
                if response.status == 200 {
                    #expect(response.header("RateLimit-Policy") == #""five-per-minute";q=5;w=60"#)
                }
            }
            #expect(statuses == [200, 200, 200, 200, 200, 429, 429, 429])
            let limited = try #require(last)
            #expect(Int(limited.header("Retry-After") ?? "") ?? 0 >= 11)
            #expect(limited.header("RateLimit")?.hasPrefix(#""five-per-minute";r=0;t="#) == true)
            #expect(harness.upstreamRequestCount == 5)
            // Another user has a bucket of their own.
            let bob = "Authorization: Bearer \(try Self.token(["sub": "bob", "iss": "test"]))"
            #expect(try await harness.get("/app/x", headers: [bob]).status == 200)
            let metrics = await harness.plane.requestSeries().prometheusText
            #expect(metrics.contains(#"gantry_rate_limit_decisions_total{policy="five-per-minute",decision="allowed"} 6"#), "\(metrics)")
            #expect(metrics.contains(#"gantry_rate_limit_decisions_total{policy="five-per-minute",decision="limited"} 3"#), "\(metrics)")
        }
    }

    /// A rate limit in shadow mode never refuses: the request over it reaches the upstream with
    /// the fields saying r=0, is counted as limited, and its access-log line says so.
    @Test func aShadowRateLimitCountsAndLogsButNeverRefuses() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-shadow-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try AccessLogSink(destination: .file(path))
        let yaml = { (ports: [Int]) in
            """
            loadBalancer:
              listeners: [{name: http, port: 0}]
            gateway:
              policies:
                - {name: trial, rateLimit: {requests: 1, per: 1m, enforce: false}}
              routes:
                - {path: /, service: app, policies: [trial]}
            services:
              - {name: app, endpoints: [127.0.0.1:\(ports[0])]}
            """
        }
        try await withProxy(upstreams: 1, accessLog: sink, yaml: yaml) { harness in
            #expect(try await harness.get("/one").status == 200)
            let over = try await harness.get("/two")
            #expect(over.status == 200)
            #expect(over.header("RateLimit") == #""trial";r=0;t=60"#)
            #expect(harness.upstreamRequestCount == 2)
            var details: [String] = []
            #expect(
                await eventually {
                    sink.sync()
                    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                    details = text.split(separator: "\n").compactMap {
                        (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]).map { $0["detail"] as? String ?? "-" }
                    }
                    return details.count == 2
                })
            #expect(details == ["-", "rate_limited_shadow"])
            let metrics = await harness.plane.requestSeries().prometheusText
            #expect(metrics.contains(#"gantry_rate_limit_decisions_total{policy="trial",decision="limited"} 1"#), "\(metrics)")
            #expect(!metrics.contains("gantry_local_responses_total"), "a shadow refusal is no answer of gantry's own")
        }
    }
}
