import Foundation
import GantryConfig
import GantryCore
import GantryTestSupport
import NIOPosix
import Testing

@testable import GantryProxy

/// gRPC and HTTP/2 upstreams: gRPC's own C core (Debian's `python3-grpcio`) as the client and
/// as the service, gantry between them speaking HTTP/2 both ways.
extension LiveProxyTests {
    static func grpcYAML(
        _ endpoints: [String], protocolLine: String = "protocol: h2c", policies: String = "[]", routePolicies: String = "[]",
        pool: String = ""
    ) -> ([Int]) -> String {
        { _ in
            """
            loadBalancer: {listeners: [{name: http, port: 0, http2: true}]}
            gateway:
              policies: \(policies)
              routes:
                - {path: /test.Echo, service: grpc, policies: \(routePolicies)}
                - {path: /grpc.health.v1.Health, service: grpc}
            services:
              - name: grpc
                endpoints: [\(endpoints.joined(separator: ", "))]
                \(protocolLine)
                \(pool)
            """
        }
    }

    /// Every kind of call goes through with its messages, its metadata both ways and its
    /// status: unary, server streaming, client streaming, bidirectional, and a failure whose
    /// status, message and trailing metadata reach the client from the service's trailers.
    @Test func grpcCallsOfEveryKindPassThrough() async throws {
        let server = try await PythonGRPC.server()
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        try await withProxy(upstreams: 0, accessLog: sink, yaml: Self.grpcYAML(["127.0.0.1:\(server.port)"])) { harness in
            let target = "127.0.0.1:\(harness.port)"
            let unary = try await PythonGRPC.call(target, "Unary", "hello")
            #expect(unary["code"] as? String == "OK", "\(unary)")
            let seen = (unary["value"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
            #expect(seen?["echo"] as? String == "hello", "\(unary)")
            #expect(seen?["forwardedFor"] as? String == "127.0.0.1")
            #expect((seen?["requestId"] as? String)?.isEmpty == false)

            let serverStream = try await PythonGRPC.call(target, "ServerStream", "5")
            #expect(serverStream["code"] as? String == "OK", "\(serverStream)")
            #expect(serverStream["received"] as? [String] == ["msg-0", "msg-1", "msg-2", "msg-3", "msg-4"])

            let clientStream = try await PythonGRPC.call(target, "ClientStream")
            #expect(clientStream["value"] as? String == "a+b+c", "\(clientStream)")

            let bidi = try await PythonGRPC.call(target, "Bidi")
            #expect(bidi["received"] as? [String] == ["X", "Y"], "\(bidi)")

            let failure = try await PythonGRPC.call(target, "Fail", "widget")
            #expect(failure["code"] as? String == "NOT_FOUND", "\(failure)")
            #expect(failure["details"] as? String == "no such thing: widget")
            #expect((failure["trailing"] as? [String: String])?["detail-key"] == "detail-value")

            var lines: [[String: Any]] = []
            #expect(
                await eventually {
                    lines = Self.accessLog(log, sink: sink)
                    return lines.count == 5
                })
            #expect(lines.allSatisfy { $0["status"] as? Int == 200 }, "\(lines)")
            #expect(lines.first?["protocol"] as? String == "HTTP/2")
            // Calls share connections (one per gantry loop at most, here).
            let counters = await harness.plane.counters()
            #expect(counters[.upstreamConnects] + counters[.upstreamReused] == 5, "\(counters)")
            #expect(counters[.upstreamReused] >= 3, "\(counters)")
            #expect(harness.plane.endpoints(forService: "grpc")?.endpoints.first?.inFlight == 0)
        }
    }

    /// Gantry's own answers to a gRPC client are gRPC statuses (HTTP 200, `grpc-status` in
    /// trailers): a missing token is UNAUTHENTICATED, a rate limit RESOURCE_EXHAUSTED, an
    /// endpoint that is down UNAVAILABLE, and a call whose `grpc-timeout` passes
    /// DEADLINE_EXCEEDED, before its response and in the middle of a stream.
    @Test func gantrysOwnAnswersAreGRPCStatuses() async throws {
        let server = try await PythonGRPC.server()
        let jwks = GantryProcess.scratchDirectory().appendingPathComponent("keys.jwks.json")
        try #"{"keys":[{"kty":"oct","k":"\#(Base64URL.encode(Self.secret))"}]}"#.write(to: jwks, atomically: true, encoding: .utf8)
        let policies = "[{name: token, jwt: {keys: [{jwksFile: \(jwks.path)}], issuer: test}}, {name: two, rateLimit: {requests: 2, per: 1m}}]"
        let yaml = Self.grpcYAML(["127.0.0.1:\(server.port)"], policies: policies, routePolicies: "[token, two]")
        try await withProxy(upstreams: 0, yaml: yaml) { harness in
            let target = "127.0.0.1:\(harness.port)"
            let anonymous = try await PythonGRPC.call(target, "Unary", "x")
            #expect(anonymous["code"] as? String == "UNAUTHENTICATED", "\(anonymous)")

            let token = try Self.token(["iss": "test", "sub": "ada", "exp": Date().timeIntervalSince1970 + 600])
            let slow = try await PythonGRPC.call(target, "Slow", "5", options: ["--token", token, "--timeout", "0.5"])
            #expect(slow["code"] as? String == "DEADLINE_EXCEEDED", "\(slow)")
            let stream = try await PythonGRPC.call(target, "SlowStream", "5", options: ["--token", token, "--timeout", "1"])
            #expect(stream["code"] as? String == "DEADLINE_EXCEEDED", "\(stream)")
            #expect(stream["received"] as? [String] == ["first"], "\(stream)")

            let limited = try await PythonGRPC.call(target, "Unary", "x", options: ["--token", token])
            #expect(limited["code"] as? String == "RESOURCE_EXHAUSTED", "\(limited)")
        }
        let down = try await closedPort(group: MultiThreadedEventLoopGroup.singleton)
        try await withProxy(upstreams: 0, yaml: Self.grpcYAML(["127.0.0.1:\(down)"])) { harness in
            let unavailable = try await PythonGRPC.call("127.0.0.1:\(harness.port)", "Unary", "x")
            #expect(unavailable["code"] as? String == "UNAVAILABLE", "\(unavailable)")
        }
    }

    /// An endpoint that takes one stream per connection (`SETTINGS_MAX_CONCURRENT_STREAMS` 1)
    /// gets a connection per concurrent call rather than more streams than it allows.
    @Test func anEndpointsStreamLimitIsRespected() async throws {
        let server = try await PythonGRPC.server(["--max-streams", "1"])
        try await withProxy(upstreams: 0, yaml: Self.grpcYAML(["127.0.0.1:\(server.port)"])) { harness in
            let target = "127.0.0.1:\(harness.port)"
            // After a first call on the same client connection (so on the same gantry loop),
            // the endpoint's SETTINGS are known.
            let concurrent = try await PythonGRPC.call(target, "Slow", "1", options: ["--count", "4", "--warm"])
            let calls = concurrent["calls"] as? [[String: Any]] ?? []
            #expect(calls.count == 4 && calls.allSatisfy { $0["code"] as? String == "OK" }, "\(concurrent)")
            let peers = try await PythonGRPC.call(target, "Peers")
            let list = (peers["value"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String] ?? []
            #expect(list.count >= 4, "\(peers)")
        }
    }

    /// An endpoint that ends its connections with GOAWAY every 300 ms (gRPC's
    /// `max_connection_age`) fails no call: streams it processed finish, new ones go on a new
    /// connection.
    @Test func goAwayFailsNoCall() async throws {
        let server = try await PythonGRPC.server(["--max-age-ms", "300"])
        try await withProxy(upstreams: 0, yaml: Self.grpcYAML(["127.0.0.1:\(server.port)"])) { harness in
            let target = "127.0.0.1:\(harness.port)"
            var codes: [String] = []
            let start = ContinuousClock.now
            while ContinuousClock.now - start < .seconds(2) {
                let answer = try await PythonGRPC.call(target, "Unary", "again")
                codes.append(answer["code"] as? String ?? "\(answer)")
            }
            #expect(codes.allSatisfy { $0 == "OK" }, "\(codes)")
            let peers = try await PythonGRPC.call(target, "Peers")
            let list = (peers["value"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String] ?? []
            #expect(list.count > 1, "\(peers)")
        }
    }

    /// `protocol: h2`: HTTP/2 over TLS, agreed by ALPN and verified against the CA file. An
    /// endpoint that speaks only HTTP/1.1 over TLS is refused with a reason in the log, never
    /// spoken to in HTTP/1.1.
    @Test func h2ServicesSpeakHTTP2OverVerifiedTLS() async throws {
        let pki = try await TestPKI.make()
        let server = try await PythonGRPC.server(["--tls", pki.serverCertificate, pki.serverKey])
        let http1Only = try await PythonHTTPSServer(pki: pki)
        let log = GantryProcess.scratchDirectory().appendingPathComponent("access.log").path
        let sink = try AccessLogSink(destination: .file(log))
        let tls = "tls: {caFile: \(pki.ca), serverName: backend.internal}"
        try await withProxy(upstreams: 0, accessLog: sink, yaml: Self.grpcYAML(["127.0.0.1:\(server.port)"], protocolLine: "protocol: h2", pool: tls)) {
            harness in
            let answer = try await PythonGRPC.call("127.0.0.1:\(harness.port)", "Unary", "secret")
            #expect(answer["code"] as? String == "OK", "\(answer)")
        }
        try await withProxy(upstreams: 0, accessLog: sink, yaml: Self.grpcYAML(["127.0.0.1:\(http1Only.port)"], protocolLine: "protocol: h2", pool: tls)) {
            harness in
            let answer = try await PythonGRPC.call("127.0.0.1:\(harness.port)", "Unary", "secret")
            #expect(answer["code"] as? String == "UNAVAILABLE", "\(answer)")
            #expect(await eventually { Self.details(in: log, sink: sink).contains { $0.contains("ALPN") } }, "\(Self.details(in: log, sink: sink))")
        }
    }

    /// An HTTP/1.1 client reaches an `h2c` service too: its request goes as a stream, and the
    /// response's trailers come back as chunked trailers.
    @Test func anHTTP1ClientReachesAnH2CService() async throws {
        let server = try await PythonGRPC.server()
        try await withProxy(upstreams: 0, yaml: Self.grpcYAML(["127.0.0.1:\(server.port)"])) { harness in
            let message = Array("plain".utf8)
            let body = [UInt8](GRPC.frame(message))
            let file = GantryProcess.scratchDirectory().appendingPathComponent("body.bin")
            try Data(body).write(to: file)
            let result = try await run(
                "curl",
                [
                    "-s", "--http1.1", "-D", "-", "-o", "/dev/null", "-H", "content-type: application/grpc", "-H", "te: trailers",
                    "--data-binary", "@\(file.path)", "http://127.0.0.1:\(harness.port)/test.Echo/Unary",
                ])
            #expect(result.output.contains("HTTP/1.1 200"), "\(result.output)")
            #expect(result.output.lowercased().contains("grpc-status: 0"), "\(result.output)")
        }
    }
}
