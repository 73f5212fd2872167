import Crypto
import Foundation
import GantryCore
import GantryHTTP
import GantryTestSupport
import Logging
import NIOConcurrencyHelpers
import Synchronization
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    /// A JWKS endpoint whose key set the test changes, and can switch off.
    final class KeySetServer: Sendable {
        let keys = NIOLockedValueBox<[(kid: String, secret: Data)]>([])
        let up = NIOLockedValueBox(true)
        let fetches = Atomic<Int>(0)
        /// When the last fetch came.
        let lastFetch = NIOLockedValueBox(ContinuousClock.now)

        var handler: SimpleHTTPServer.Handler {
            { [self] _ in
                fetches.add(1, ordering: .relaxed)
                lastFetch.withLockedValue { $0 = .now }
                guard up.withLockedValue({ $0 }) else { return .error(503, "down") }
                let list = keys.withLockedValue { $0 }.map { #"{"kty":"oct","alg":"HS256","kid":"\#($0.kid)","k":"\#(Base64URL.encode($0.secret))"}"# }
                return SimpleHTTPServer.Response(status: 200, headers: [("Content-Type", "application/json")], body: Data(#"{"keys":[\#(list.joined(separator: ","))]}"#.utf8))
            }
        }
    }

    static func token(kid: String, secret: Data, subject: String = "ada") -> String {
        let header = Base64URL.encode(Data(#"{"alg":"HS256","kid":"\#(kid)"}"#.utf8))
        let body = Base64URL.encode(Data(#"{"sub":"\#(subject)"}"#.utf8))
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(body)".utf8), using: SymmetricKey(data: secret))
        return "\(header).\(body).\(Base64URL.encode(Data(mac)))"
    }

    @Test func unknownKidsAreFetchedAndKnownKeysOutliveAFailingEndpoint() async throws {
        let keySet = KeySetServer()
        let first = (kid: "k1", secret: Data("first-secret-0123456789abcdefghij".utf8))
        let second = (kid: "k2", secret: Data("second-secret-0123456789abcdefghi".utf8))
        keySet.keys.withLockedValue { $0 = [first] }
        let bound = NIOLockedValueBox<Int?>(nil)
        let stop = AsyncStream<Void>.makeStream()
        let server = Task {
            try await SimpleHTTPServer(handler: keySet.handler).run(
                host: "127.0.0.1", port: 0, ready: { port in bound.withLockedValue { $0 = port } }, until: { for await _ in stop.stream { return } })
        }
        defer {
            stop.continuation.finish()
            server.cancel()
        }
        #expect(await eventually { bound.withLockedValue { $0 } != nil })
        let keyPort = bound.withLockedValue { $0 }!

        try await withProxy(yaml: { ports in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            accessLog: {enabled: false}
            gateway:
              policies:
                - name: token
                  jwt: {jwks: {url: "http://127.0.0.1:\(keyPort)/jwks", refreshInterval: 1h, minRefetchInterval: 1s}}
              routes:
                - {path: /, service: app, policies: [token]}
            services:
              - name: app
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
        }) { harness in
            let withFirst = "Authorization: Bearer \(Self.token(kid: first.kid, secret: first.secret))"
            #expect(await eventually { (try? await harness.get("/x", headers: [withFirst]))?.status == 200 })

            // The issuer adds a key. Once minRefetchInterval has passed since the last fetch, a
            // token with the new kid waits while the key set is fetched again, and passes.
            keySet.keys.withLockedValue { $0 = [first, second] }
            #expect(await eventually { ContinuousClock.now - keySet.lastFetch.withLockedValue { $0 } > .milliseconds(1100) })
            let before = keySet.fetches.load(ordering: .relaxed)
            let withSecond = "Authorization: Bearer \(Self.token(kid: second.kid, secret: second.secret))"
            #expect(try await harness.get("/x", headers: [withSecond]).status == 200)
            #expect(keySet.fetches.load(ordering: .relaxed) == before + 1)

            // Within minRefetchInterval of a fetch, an unknown kid is refused at once, and does
            // not hammer the endpoint: at most one fetch per interval.
            let unknown = try await harness.get("/x", headers: ["Authorization: Bearer \(Self.token(kid: "k9", secret: first.secret))"])
            #expect(unknown.status == 401)
            #expect(unknown.header("WWW-Authenticate")?.contains("no key with kid k9") == true)
            for _ in 0..<20 {
                _ = try await harness.get("/x", headers: ["Authorization: Bearer \(Self.token(kid: "k9", secret: first.secret))"])
            }
            #expect(keySet.fetches.load(ordering: .relaxed) - before <= 2)

            // The endpoint fails: the keys already known keep working.
            keySet.up.withLockedValue { $0 = false }
            for _ in 0..<3 {
                _ = try await harness.get("/x", headers: ["Authorization: Bearer \(Self.token(kid: "k8", secret: first.secret))"])
            }
            // (an unknown kid asks for a fetch once the interval has passed)
            #expect(
                await eventually(timeout: .seconds(5)) {
                    _ = try? await harness.get("/x", headers: ["Authorization: Bearer \(Self.token(kid: "k7", secret: first.secret))"])
                    return keySet.fetches.load(ordering: .relaxed) > before + 1
                })
            // (new tokens, so no verdict comes from the verified-token cache)
            for (kid, secret) in [first, second] {
                let fresh = "Authorization: Bearer \(Self.token(kid: kid, secret: secret, subject: "bob"))"
                #expect(try await harness.get("/x", headers: [fresh]).status == 200)
            }
        }
    }
}
