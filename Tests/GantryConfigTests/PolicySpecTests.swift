import GantryCore
import Testing

@testable import GantryConfig

@Suite struct PolicySpecTests {
    private func issues(_ gateway: String) -> [String] {
        let yaml = """
            loadBalancer: {listeners: [{name: http, port: 8080}]}
            gateway:
            \(gateway)
            services:
              - {name: app, endpoints: [127.0.0.1:9001]}
            """
        switch ConfigLoader.load(yaml: yaml, file: "gantry.yaml", coreCount: 2) {
        case .success: return []
        case .failure(let error): return error.issues.map(\.description)
        }
    }

    @Test func policiesCompileAndRoutesListThem() throws {
        let yaml = """
            loadBalancer: {listeners: [{name: http, port: 8080}]}
            gateway:
              policies:
                - name: token
                  jwt: {jwks: {service: app, path: /keys}, issuer: me, forwardClaims: [{claim: sub, header: X-User-ID}]}
                - name: limit
                  rateLimit: {requests: 10, per: 1s, burst: 20, key: {claim: sub}}
              routes:
                - {path: /, service: app, policies: [token, limit]}
            services:
              - {name: app, endpoints: [127.0.0.1:9001]}
            """
        let snapshot = try ConfigLoader.load(yaml: yaml, file: "gantry.yaml", coreCount: 2).get().snapshot
        #expect(snapshot.routeSettings[0].policies == [0, 1])
        guard let jwt = snapshot.policies[0].policy as? JWTPolicy, let limit = snapshot.policies[1].policy as? RateLimitPolicy else {
            Issue.record("wrong kinds")
            return
        }
        #expect(jwt.keySource == .service(name: "app", path: "/keys"))
        #expect(jwt.forwardClaims.map(\.header) == ["x-user-id"])
        #expect(jwt.tokenSource == .bearer)
        #expect(limit.bucket == TokenBucket(requests: 10, per: .seconds(1), burst: 20))
        #expect(limit.key == .claim("sub"))
    }

    @Test func policyMistakesAreReported() {
        let found = issues(
            """
              policies:
                - name: token
                  jwt: {jwks: {service: ap}}
                - name: limit
                  rateLimit: {requests: 0, per: 1s}
                - name: by-user
                  rateLimit: {requests: 5, per: 1s, key: {claim: sub}}
                - name: both
                  jwt: {keys: []}
                  rateLimit: {requests: 1, per: 1s}
                - name: shape
                  validate: {jsonSchema: '{"type": "object", "oneOf": []}'}
              routes:
                - {path: /, service: app, policies: [tokn, by-user]}
            """)
        let expected = [
            #"gateway.policies[0].jwt.jwks.service: unknown service "ap" (did you mean "app"?)"#,
            "gateway.policies[1].rateLimit.requests: needs a number of requests of at least 1",
            "gateway.policies[3]: set exactly one policy kind: jwt, oauth2, rateLimit, apiKey",
            #"gateway.routes[0].policies[0]: unknown policy "tokn""#,
            "gateway.policies[4].validate.jsonSchema: #: oneOf is not supported",
            #"gateway.routes[0].policies[1]: rateLimit "by-user" is keyed by the sub claim: list a jwt or oauth2 policy before it"#,
        ]
        for fragment in expected {
            #expect(found.contains { $0.contains(fragment) }, "missing: \(fragment)\nin: \(found.joined(separator: "\n"))")
        }
    }
}
