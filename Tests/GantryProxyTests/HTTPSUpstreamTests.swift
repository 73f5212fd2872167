import Foundation
import GantryConfig
import GantryCore
import GantryHTTP
import GantryTLS
import GantryTestSupport
import NIOConcurrencyHelpers
import NIOSSL
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import GantryProxy

extension LiveProxyTests {
    static func httpsServiceYAML(port: Int, tls: String) -> ([Int]) -> String {
        { _ in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{path: /, service: backend}]}
            services:
              - name: backend
                endpoints: [127.0.0.1:\(port)]
                tls: \(tls)
            """
        }
    }

    /// What the Python server saw, from the JSON it answered with.
    static func seen(_ response: RawResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
    }

    /// The access log's lines so far, as JSON objects.
    static func accessLog(_ path: String, sink: AccessLogSink) -> [[String: Any]] {
        sink.sync()
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    /// The access log's `detail` fields so far.
    static func details(in path: String, sink: AccessLogSink) -> [String] {
        accessLog(path, sink: sink).compactMap { $0["detail"] as? String }
    }

    /// The service's endpoints speak HTTPS: gantry verifies the certificate against the CA
    /// file and the configured name, sends that name as SNI, speaks TLS 1.3 by default, and
    /// keeps the connection for the next requests instead of shaking hands again.
    @Test func anHTTPSServiceIsVerifiedSentItsNameAndPooled() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonHTTPSServer(pki: pki)
        let tls = "{caFile: \(pki.ca), serverName: backend.internal}"
        try await withProxy(upstreams: 0, yaml: Self.httpsServiceYAML(port: server.port, tls: tls)) { harness in
            // One client connection, so one event loop and its pool.
            let client = try harness.connect()
            var answers: [[String: Any]] = []
            for path in ["/a", "/b", "/c"] {
                try client.send(request(["GET \(path) HTTP/1.1", "Host: example.com"]))
                let response = try await client.readResponse()
                #expect(response.status == 200)
                answers.append(Self.seen(response))
            }
            #expect(answers.map { $0["path"] as? String } == ["/a", "/b", "/c"])
            #expect(answers.allSatisfy { $0["sni"] as? String == "backend.internal" })
            #expect(answers.allSatisfy { $0["version"] as? String == "TLSv1.3" })
            #expect(answers.map { $0["connections"] as? Int } == [1, 1, 1], "one TLS connection, reused")
        }
    }

    /// An endpoint given by IP address, with no server name: no SNI (RFC 6066 has none for
    /// addresses), and the certificate must carry the address, which this one does.
    @Test func anIPEndpointWithoutServerNameIsCheckedAgainstTheAddress() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonHTTPSServer(pki: pki)
        try await withProxy(upstreams: 0, yaml: Self.httpsServiceYAML(port: server.port, tls: "{caFile: \(pki.ca)}")) { harness in
            let response = try await harness.get("/ip")
            #expect(response.status == 200)
            #expect(Self.seen(response)["sni"] is NSNull)
        }
    }

    /// A certificate that does not verify (an authority gantry does not trust, another name, no
    /// version in common) is a 502 whose access-log line says what to check; the request never
    /// reaches the endpoint, in TLS or in plain text.
    @Test func certificateProblemsAnswer502AndTheLogSaysWhy() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonHTTPSServer(pki: pki, maxVersion: "1.2")
        let cases: [(tls: String, says: String)] = [
            ("{}", "did not verify"),  // the system's store knows nothing of the test CA
            ("{caFile: \(pki.rogueCA), serverName: backend.internal}", "did not verify"),
            ("{caFile: \(pki.ca), serverName: other.internal}", "does not name the server other.internal: it names backend.internal, 127.0.0.1"),
            ("{caFile: \(pki.ca), serverName: backend.internal, minVersion: \"1.3\"}", "no TLS version in common"),
        ]
        for (tls, says) in cases {
            let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
            let sink = try AccessLogSink(destination: .file(log))
            try await withProxy(upstreams: 0, accessLog: sink, yaml: Self.httpsServiceYAML(port: server.port, tls: tls)) { harness in
                let response = try await harness.get("/secret")
                #expect(response.status == 502, "\(tls)")
                #expect(String(decoding: response.body, as: UTF8.self).contains("secure connection"), "\(tls)")
                var details: [String] = []
                #expect(await eventually { details = Self.details(in: log, sink: sink); return !details.isEmpty })
                #expect(details.first?.hasPrefix("upstream_tls_failure: 127.0.0.1:\(server.port): ") == true, "\(details)")
                #expect(details.first?.contains(says) == true, "\(tls): \(details)")
            }
        }
        // With the right options the same server answers, so the failures above were the options'.
        let good = "{caFile: \(pki.ca), serverName: backend.internal}"
        try await withProxy(upstreams: 0, yaml: Self.httpsServiceYAML(port: server.port, tls: good)) { harness in
            let response = try await harness.get("/fine")
            #expect(response.status == 200)
            #expect(Self.seen(response)["version"] as? String == "TLSv1.2")
            #expect(Self.seen(response)["path"] as? String == "/fine")
        }
    }

    /// An endpoint that accepts the connection and never answers the handshake holds a request
    /// no longer than the connect timeout: 502 (the endpoint failed, not the response), and the
    /// log says what did not happen.
    @Test func anEndpointThatNeverAnswersTheHandshakeFailsWithinTheConnectTimeout() async throws {
        let silent = try await PythonPeer.silent()
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        let yaml: ([Int]) -> String = { _ in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway: {routes: [{path: /, service: backend}]}
            services:
              - name: backend
                endpoints: [127.0.0.1:\(silent.port)]
                tls: {}
                timeouts: {connect: 300ms, response: 60s}
                retries: {attempts: 0}
            """
        }
        try await withProxy(upstreams: 0, accessLog: sink, yaml: yaml) { harness in
            let response = try await harness.get("/x")
            #expect(response.status == 502)
            var details: [String] = []
            #expect(await eventually { details = Self.details(in: log, sink: sink); return !details.isEmpty })
            #expect(details.first?.contains("no TLS handshake within 300 ms") == true, "\(details)")
        }
    }

    /// An endpoint that requires a client certificate refuses gantry without one (502, and the
    /// log says so) and takes the configured one, whose name it sees.
    @Test func mutualTLSPresentsTheClientCertificate() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonHTTPSServer(pki: pki, clientCA: pki.ca)
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        try await withProxy(upstreams: 0, accessLog: sink, yaml: Self.httpsServiceYAML(port: server.port, tls: "{caFile: \(pki.ca)}")) { harness in
            let anonymous = try await harness.get("/anonymous")
            #expect(anonymous.status == 502)
            var details: [String] = []
            #expect(await eventually { details = Self.details(in: log, sink: sink); return !details.isEmpty })
            #expect(details.first?.hasPrefix("upstream_tls_failure: 127.0.0.1:\(server.port): ") == true, "\(details)")
            #expect(details.first?.contains("client certificate") == true, "\(details)")
        }
        let tls = "{caFile: \(pki.ca), clientCertificate: \(pki.clientCertificate), clientKey: \(pki.clientKey)}"
        try await withProxy(upstreams: 0, yaml: Self.httpsServiceYAML(port: server.port, tls: tls)) { harness in
            let response = try await harness.get("/me")
            #expect(response.status == 200)
            #expect(Self.seen(response)["client"] as? String == "gantry-client")
        }
    }

    /// A jwt policy fetches its key set from an `https://` URL, verified against the CA file.
    @Test func aKeySetIsFetchedOverHTTPS() async throws {
        let pki = try await TestPKI.make()
        let secret = Data("a-key-set-over-https-0123456789ab".utf8)
        let jwks = GantryProcess.scratchDirectory().appendingPathComponent("jwks.json").path
        try #"{"keys":[{"kty":"oct","alg":"HS256","kid":"k1","k":"\#(Base64URL.encode(secret))"}]}"#.write(toFile: jwks, atomically: true, encoding: .utf8)
        let server = try await PythonHTTPSServer(pki: pki, jwks: jwks)
        try await withProxy(upstreams: 1, yaml: { ports in
            """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            accessLog: {enabled: false}
            gateway:
              policies:
                - name: token
                  jwt: {jwks: {url: "https://127.0.0.1:\(server.port)/jwks.json", tls: {caFile: \(pki.ca)}}}
              routes:
                - {path: /, service: app, policies: [token]}
            services:
              - {name: app, endpoints: [127.0.0.1:\(ports[0])]}
            """
        }) { harness in
            let bearer = "Authorization: Bearer \(Self.token(kid: "k1", secret: secret))"
            #expect(await eventually { (try? await harness.get("/x", headers: [bearer]))?.status == 200 })
            let without = try await harness.get("/x")
            #expect(without.status == 401)
            #expect(harness.upstreamRequestCount == 1)
        }
    }

    /// Upstream TLS options are checked when the file loads, each problem at its key.
    @Test func upstreamTLSOptionsAreCheckedWhenTheFileLoads() throws {
        let directory = GantryProcess.scratchDirectory().path
        try "not a certificate".write(toFile: directory + "/junk.pem", atomically: true, encoding: .utf8)
        let cases: [(tls: String, jwksURL: String, path: String, says: String)] = [
            ("{caFile: missing.pem}", "http://keys/jwks", "services[0].tls.caFile", "cannot read \(directory)/missing.pem"),
            ("{caFile: junk.pem}", "http://keys/jwks", "services[0].tls.caFile", "holds no PEM certificate"),
            ("{clientCertificate: junk.pem}", "http://keys/jwks", "services[0].tls.clientKey", "give both or neither"),
            ("{minVersion: \"1.1\"}", "http://keys/jwks", "services[0].tls.minVersion", "write \"1.2\" or \"1.3\""),
            ("{}", "ftp://keys/jwks", "gateway.policies[0].jwt.jwks.url", "only http:// and https:// URLs"),
        ]
        for (tls, url, path, says) in cases {
            let yaml = """
                loadBalancer: {listeners: [{name: http, port: 0}]}
                gateway:
                  policies: [{name: token, jwt: {jwks: {url: "\(url)"}}}]
                  routes: [{path: /, service: backend, policies: [token]}]
                services:
                  - {name: backend, endpoints: [127.0.0.1:8443], tls: \(tls)}
                """
            let result = ConfigLoader.load(yaml: yaml, file: directory + "/gantry.yaml", coreCount: 2)
            guard case .failure(let error) = result else {
                Issue.record("\(tls) \(url) loaded")
                continue
            }
            #expect(error.description.contains("\(path): "), "\(error)")
            #expect(error.description.contains(says), "\(error)")
        }
        let plainWithTLS = """
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway:
              policies: [{name: token, jwt: {jwks: {url: "http://keys/jwks", tls: {}}}}]
              routes: [{path: /, service: backend, policies: [token]}]
            services: [{name: backend, endpoints: [127.0.0.1:8443]}]
            """
        guard case .failure(let error) = ConfigLoader.load(yaml: plainWithTLS, file: directory + "/gantry.yaml", coreCount: 2) else {
            Issue.record("tls on an http:// URL loaded")
            return
        }
        #expect(error.description.contains("gateway.policies[0].jwt.jwks.tls: tls applies to https:// URLs"), "\(error)")
    }

    /// A client over TLS (key sets, introspection, the load balancer's checks) reports what
    /// went wrong with the handshake itself: a certificate it cannot trust, every time (a write
    /// that raced the failed handshake reported only "I/O on closed channel"), and a peer that
    /// never answers the handshake, within the timeout it was given.
    @Test func aTLSClientReportsTheHandshakesOwnFailure() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonHTTPSServer(pki: pki)
        let context = try TLSClientContext.shared.context(for: UpstreamTLS(caFile: pki.rogueCA, serverName: "backend.internal"))
        let tls = SimpleHTTPClient.TLS(context: context, serverName: "backend.internal")
        for _ in 0..<5 {
            do {
                _ = try await SimpleHTTPClient.request(.GET, host: "127.0.0.1", port: server.port, path: "/", tls: tls)
                Issue.record("a certificate from another CA was trusted")
            } catch {
                #expect(TLSClientContext.explain(error).contains("did not verify"), "\(error)")
            }
        }

        let silent = try await PythonPeer.silent()
        // Unstructured, so that a wait with no end fails the test instead of holding it.
        let outcome = NIOLockedValueBox<String?>(nil)
        let attempt = Task {
            do {
                _ = try await SimpleHTTPClient.request(.GET, host: "127.0.0.1", port: silent.port, path: "/", timeout: .milliseconds(300), tls: tls)
                outcome.withLockedValue { $0 = "answered" }
            } catch {
                outcome.withLockedValue { $0 = error is HandshakeTimeout ? "timed out" : "\(error)" }
            }
        }
        defer { attempt.cancel() }
        #expect(await eventually { outcome.withLockedValue { $0 } != nil }, "no outcome after 10 s")
        #expect(outcome.withLockedValue { $0 } == "timed out")
    }
}
