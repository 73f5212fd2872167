import GantryCore
import GantryTestSupport
import NIOPosix
import Testing

@testable import GantryProxy

extension LiveProxyTests {
    private static func oneService(_ endpoints: [String], extra: String = "") -> String {
        """
        loadBalancer: {listeners: [{port: 0}]}
        gateway: {routes: [{path: /, service: app}]}
        services:
          - name: app
            endpoints: [\(endpoints.joined(separator: ", "))]
        \(extra)
        """
    }

    @Test func noReadyEndpointIs503() async throws {
        try await withProxy { harness in
            harness.plane.setEndpoints([], forService: "app")
            #expect(await eventually { harness.plane.endpoints(forService: "app")?.endpoints.isEmpty == true })
            let response = try await harness.get("/")
            #expect(response.status == 503)
            #expect(try response.json()["error"] as? String == "no_endpoint")
            #expect(try response.json()["requestId"] as? String == response.header("x-request-id"))
        }
    }

    @Test func refusedConnectionsAre502AfterTryingEveryEndpoint() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let dead = [try await closedPort(group: group), try await closedPort(group: group)]
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(dead.map { "127.0.0.1:\($0)" }) }) { harness in
            let response = try await harness.get("/")
            #expect(response.status == 502)
            #expect(try response.json()["error"] as? String == "upstream_connect_failure")
            let counters = await harness.plane.counters()
            #expect(counters[.upstreamConnectFailures] == 3)  // first attempt + 2 retries
        }
    }

    @Test func connectFailuresAreRetriedOnAnotherEndpointEvenForPOST() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let dead = try await closedPort(group: group)
        try await withProxy(upstreams: 1, yaml: { ports in Self.oneService(["127.0.0.1:\(dead)", "127.0.0.1:\(ports[0])"]) }) {
            harness in
            for index in 0..<10 {
                let connection = try harness.connect()
                try connection.send(request(["POST /order HTTP/1.1", "Host: a", "Content-Length: 5"]) + "hello")
                let response = try await connection.readResponse()
                #expect(response.status == 200, "request \(index)")
                #expect(try response.json()["body"] as? String == "hello")
            }
            #expect(harness.upstreams[0].requestCount == 10)
        }
    }

    @Test func aResetIsRetriedOnlyForIdempotentRequestsWithoutBody() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let resetter = try await MisbehavingUpstream(mode: .resetOnRequest, group: group)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(resetter.port)"]) }) { harness in
            let get = try await harness.get("/")
            #expect(get.status == 502)
            #expect(try get.json()["error"] as? String == "upstream_reset")
            #expect(await eventually { resetter.requests == 3 })  // GET: tried three times

            let connection = try harness.connect()
            try connection.send(request(["POST / HTTP/1.1", "Host: a", "Content-Length: 0"]))
            #expect(try await connection.readResponse().status == 502)
            try connection.send(request(["PUT / HTTP/1.1", "Host: a", "Content-Length: 3"]) + "abc")
            #expect(try await connection.readResponse().status == 502)
            #expect(resetter.requests == 5)  // POST and PUT with a body: once each
        }
    }

    @Test func aResetGETSucceedsOnAnotherEndpoint() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let resetter = try await MisbehavingUpstream(mode: .resetOnRequest, group: group)
        try await withProxy(upstreams: 1, yaml: { ports in Self.oneService(["127.0.0.1:\(resetter.port)", "127.0.0.1:\(ports[0])"]) }) {
            harness in
            for _ in 0..<10 {
                let response = try await harness.get("/")
                #expect(response.status == 200)
            }
            #expect(resetter.requests >= 1)
            #expect(harness.upstreams[0].requestCount == 10)
        }
    }

    @Test func anInvalidUpstreamResponseIs502() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let garbage = try await MisbehavingUpstream(mode: .garbage, group: group)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(garbage.port)"]) }) { harness in
            let response = try await harness.get("/")
            #expect(response.status == 502)
            #expect(try response.json()["error"] as? String == "upstream_protocol_error")
        }
    }

    /// A garbage status line is an upstream failure like a reset: a GET is answered by the
    /// other endpoint; a POST, which the garbage endpoint may have acted on, is not sent again.
    @Test func aGarbageResponseIsRetriedOnlyWhereAResetWouldBe() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let garbage = try await MisbehavingUpstream(mode: .garbage, group: group)
        try await withProxy(
            upstreams: 1, yaml: { ports in Self.oneService(["127.0.0.1:\(garbage.port)", "127.0.0.1:\(ports[0])"], extra: "    loadBalancing: roundRobin") }
        ) { harness in
            for _ in 0..<4 {
                let response = try await harness.get("/")
                #expect(response.status == 200)
            }
            #expect(garbage.requests >= 2)
            var statuses: [Int] = []
            for _ in 0..<4 {
                let connection = try harness.connect()
                try connection.send(request(["POST / HTTP/1.1", "Host: a", "Content-Length: 1"]) + "x")
                statuses.append(try await connection.readResponse().status)
            }
            #expect(statuses.sorted() == [200, 200, 502, 502])
        }
    }

    /// Trailers of a client's chunked body are not forwarded: an upstream that merged them into
    /// the head would take them for fields the gateway set.
    @Test func requestTrailersAreNotForwarded() async throws {
        let upstream = try await MisbehavingUpstream(mode: .reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), group: MultiThreadedEventLoopGroup.singleton)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(upstream.port)"]) }) { harness in
            let connection = try harness.connect()
            try connection.send(
                "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
            #expect(try await connection.readResponse().status == 200)
            #expect(upstream.received.hasSuffix("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
            #expect(!upstream.received.contains("6.6.6.6"))
        }
    }

    /// A pipelined request whose body breaks is answered 400 after the one before it, and its
    /// head never reaches an upstream: the queued parts are handled as one batch.
    @Test func aPipelinedRequestWhoseBodyBreaksNeverLeaves() async throws {
        let upstream = try await MisbehavingUpstream(mode: .reply("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), group: MultiThreadedEventLoopGroup.singleton)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(upstream.port)"]) }) { harness in
            let connection = try harness.connect()
            try connection.send(
                "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" + "POST /broken HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n")
            #expect(try await connection.readResponse().status == 200)
            #expect(try await connection.readResponse().status == 400)
            #expect(await connection.waitForClose())
            #expect(upstream.received.contains("GET /first"))
            #expect(!upstream.received.contains("/broken"))
        }
    }

    @Test func unframedAndChunkedUpstreamResponsesReachTheClientWhole() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        // HTTP/1.0 without Content-Length: the body ends when the upstream closes.
        let unframed = try await MisbehavingUpstream(
            mode: .replyThenClose(["HTTP/1.0 200 OK\r\nX-Up: old\r\n\r\nfirst part, ", "second part"]), group: group)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(unframed.port)"]) }) { harness in
            let response = try await harness.get("/")
            #expect(response.status == 200)
            #expect(response.header("x-up") == "old")
            #expect(response.text == "first part, second part")
        }
        // Chunks split across writes, with an extension and a trailer, then one more response
        // on the connection that nobody asked for: the client gets the first, whole.
        let chunked = try await MisbehavingUpstream(
            mode: .replyThenClose([
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhel", "lo\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra",
            ]), group: group)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(chunked.port)"]) }) { harness in
            let response = try await harness.get("/")
            #expect(response.status == 200)
            #expect(response.text == "hello world")
        }
        // Both Content-Length and Transfer-Encoding: possibly a split response, never passed on.
        let ambiguous = try await MisbehavingUpstream(
            mode: .replyThenClose(["HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"]),
            group: group)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(ambiguous.port)"]) }) { harness in
            let response = try await harness.get("/")
            #expect(response.status == 502)
            #expect(try response.json()["error"] as? String == "upstream_protocol_error")
        }
    }

    @Test func bytesAfterAnUpstreamResponseNeverAnswerTheNextRequest() async throws {
        // Every answer carries a second response no request asked for (what a desynchronised or
        // smuggling-confused upstream sends). Two pipelined requests: each must get "a", never
        // "evil", so the connection that carried the extra bytes is not used again.
        let twice = try await MisbehavingUpstream(
            mode: .reply("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil"),
            group: MultiThreadedEventLoopGroup.singleton)
        try await withProxy(upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(twice.port)"]) }) { harness in
            let connection = try harness.connect()
            try connection.send(request(["GET /one HTTP/1.1", "Host: a"]) + request(["GET /two HTTP/1.1", "Host: a"]))
            let first = try await connection.readResponse()
            let second = try await connection.readResponse()
            #expect(first.text == "a")
            #expect(second.text == "a")
            #expect(twice.requests == 2)
        }
    }

    @Test func aSlowUpstreamIs504AndItsConnectionIsNotReused() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let silent = try await MisbehavingUpstream(mode: .neverAnswer, group: group)
        try await withProxy(
            upstreams: 0, yaml: { _ in Self.oneService(["127.0.0.1:\(silent.port)"], extra: "    timeouts: {response: 300ms}") }
        ) { harness in
            let started = ContinuousClock.now
            let response = try await harness.get("/")
            #expect(response.status == 504)
            #expect(try response.json()["error"] as? String == "upstream_timeout")
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(await eventually { silent.closedConnections == 1 })
        }
    }

    /// A frozen process (SIGSTOP) still accepts connections in its kernel backlog and never
    /// answers: response timeouts count as local-origin failures, as Envoy's outlier detection
    /// counts them, so after enough of them the endpoint is ejected and requests stop waiting
    /// on it.
    @Test func responseTimeoutsEjectAFrozenEndpoint() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let frozen = try await MisbehavingUpstream(mode: .neverAnswer, group: group)
        try await withProxy(
            upstreams: 1,
            yaml: { ports in
                Self.oneService(
                    ["127.0.0.1:\(frozen.port)", "127.0.0.1:\(ports[0])"],
                    extra: """
                            loadBalancing: roundRobin
                            timeouts: {response: 200ms}
                            retries: {attempts: 1, retryOn: [timeout]}
                            outlierDetection: {consecutiveConnectFailures: 3, baseEjectionTime: 60s}
                        """)
            }
        ) { harness in
            for _ in 0..<8 {
                let response = try await harness.get("/")
                #expect(response.status == 200, "a timed-out GET is retried on the other endpoint")
            }
            let waitedOn = frozen.requests
            #expect(waitedOn == 3, "ejected after its third timeout, then skipped")
            for _ in 0..<6 { #expect(try await harness.get("/").status == 200) }
            #expect(frozen.requests == waitedOn)
        }
    }

    @Test func aConnectTimeoutIs504() async throws {
        let listener = try FullBacklogListener()
        try await withProxy(
            upstreams: 0,
            yaml: { _ in
                Self.oneService(["127.0.0.1:\(listener.port)"], extra: "    timeouts: {connect: 200ms}\n    retries: {attempts: 0}")
            }
        ) { harness in
            let response = try await harness.get("/")
            #expect(response.status == 504)
            #expect(try response.json()["error"] as? String == "upstream_connect_timeout")
        }
        withExtendedLifetime(listener) {}
    }

    @Test func retryOnGatewayErrorWhenConfigured() async throws {
        try await withProxy(upstreams: 2, yaml: { ports in
            Self.oneService(ports.map { "127.0.0.1:\($0)" }, extra: "    retries: {attempts: 1, retryOn: [gatewayError]}")
        }) { harness in
            let response = try await harness.get("/", headers: ["X-Echo-Status: 503"])
            #expect(response.status == 503)  // both endpoints answer 503: the second answer is returned
            #expect(harness.upstreamRequestCount == 2)
        }
    }
}
