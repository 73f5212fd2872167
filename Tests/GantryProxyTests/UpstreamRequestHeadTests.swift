import GantryCore
import NIOCore
import NIOHTTP1
import Testing

@testable import GantryProxy

/// The head a request goes upstream with, written from the client's lines and built as
/// `HTTPHeaders`: both must say the same, and neither may carry what stays at this hop.
struct UpstreamRequestHeadTests {
    private static let trace = TraceContext(traceID: (0x0af7_6519_16cd_43dd, 0x8448_eb21_1c80_319c), spanID: 0xb7ad_6b71_6920_3331, flags: 1)
    private static let traceHeader = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    /// The client's head as the HTTP/1.1 parser hands it on.
    private static func parsed(_ wire: String) throws -> ClientRequestHead {
        var parser = HTTPRequestParser(maxHeadSize: 8192, maxHeaderCount: 32)
        var head: ClientRequestHead?
        try parser.parse(ByteBuffer(string: wire)) { part in
            if case .head(let parsed, _) = part { head = parsed }
        }
        return try #require(head)
    }

    private static func upstream(_ client: ClientRequestHead, keptClientID: Bool = false, chunked: Bool = false) -> UpstreamRequestHead {
        let forwarding = ForwardingHeaders(
            client: client, clientIP: "127.0.0.1", scheme: "http", host: client.facts.host ?? "", requestID: "r1", keptClientID: keptClientID,
            chunked: chunked, defaultHost: "app-service")
        var head = UpstreamRequestHead(client: client, uri: client.uri, forwarding: forwarding)
        head.setTrace(trace, dropsTracestate: client.facts.traceparent.flatMap { TraceContext(header: $0) } == nil && client.facts.hasTracestate)
        return head
    }

    private static func written(_ head: UpstreamRequestHead) -> String {
        var writer = HTTP1MessageWriter()
        writer.writeHead(head, allocator: ByteBufferAllocator())
        return String(buffer: writer.take()!)
    }

    private static func fields(_ head: UpstreamRequestHead) -> [String] {
        head.built.headers.map { "\($0.name): \($0.value)" }
    }

    /// The usual request: every line the client sent goes on as it came, spacing and all, and
    /// gantry's fields follow.
    @Test func aRequestWithNothingToDropGoesOnAsItsOwnBytes() throws {
        let client = try Self.parsed("GET /app/dashboard?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept:  */*  \r\nUser-Agent: caf\u{E9}\r\n\r\n")
        let head = Self.upstream(client)
        #expect(head.builtHead == nil)
        #expect(
            Self.written(head) == "GET /app/dashboard?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept:  */*  \r\nUser-Agent: caf\u{E9}\r\n"
                + "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: example.com\r\nx-request-id: r1\r\n"
                + "traceparent: \(Self.traceHeader)\r\n\r\n")
        #expect(
            Self.fields(head) == [
                "Host: example.com", "Accept: */*", "User-Agent: caf\u{E9}", "x-forwarded-for: 127.0.0.1", "x-forwarded-proto: http",
                "x-forwarded-host: example.com", "x-request-id: r1", "traceparent: \(Self.traceHeader)",
            ])
    }

    /// Hop-by-hop fields, those `Connection` names, `Expect`, and the fields gantry sets
    /// itself stay behind, line by line, in both forms; an earlier proxy's
    /// `X-Forwarded-For` values lead the list.
    @Test func hopByHopAndGantrysOwnFieldsStayBehind() throws {
        let client = try Self.parsed(
            "POST /up HTTP/1.1\r\nHost: example.com\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nExpect: 100-continue\r\n"
                + "X-Forwarded-For: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\n"
                + "Accept: */*\r\nx-request-id: bad id\r\nTraceparent: 00-00000000000000000000000000000000-0000000000000000-00\r\n"
                + "Tracestate: a=b\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n")
        let head = Self.upstream(client, chunked: true)
        #expect(
            Self.written(head) == "POST /up HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
                + "x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: example.com\r\n"
                + "x-request-id: r1\r\ntransfer-encoding: chunked\r\ntraceparent: \(Self.traceHeader)\r\n\r\n")
        #expect(
            Self.fields(head) == [
                "Host: example.com", "Accept: */*", "x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1", "x-forwarded-proto: http",
                "x-forwarded-host: example.com", "x-request-id: r1", "transfer-encoding: chunked", "traceparent: \(Self.traceHeader)",
            ])
    }

    /// A sane client ID stays where the client put it; a request without Host (HTTP/1.0)
    /// gets the service's name, as it goes upstream as HTTP/1.1.
    @Test func keptIDStaysAndAHostlessRequestGetsTheServicesName() throws {
        let client = try Self.parsed("GET / HTTP/1.0\r\nX-Request-ID: abc-123\r\n\r\n")
        let head = Self.upstream(client, keptClientID: true)
        #expect(
            Self.written(head) == "GET / HTTP/1.1\r\nX-Request-ID: abc-123\r\n"
                + "x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nhost: app-service\r\ntraceparent: \(Self.traceHeader)\r\n\r\n")
        #expect(
            Self.fields(head) == [
                "X-Request-ID: abc-123", "x-forwarded-for: 127.0.0.1", "x-forwarded-proto: http", "host: app-service",
                "traceparent: \(Self.traceHeader)",
            ])
        #expect(head.built.version == .http1_1)
    }

    /// A balancer's hash key is read from the client's lines, without building the head, and
    /// only from fields that go upstream.
    @Test func hashKeysAreReadFromTheLines() throws {
        let client = try Self.parsed(
            "GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nConnection: x-user\r\nX-User: dropped\r\ncookie: session=s2\r\n\r\n")
        let head = Self.upstream(client)
        #expect(head.values(name: "Cookie") == ["a=1", "session=s2"])
        #expect(head.first(name: "x-user") == nil)
        #expect(head.first(name: "host") == "h")
        #expect(head.builtHead == nil)
        var changed = head
        changed.built.headers.replaceOrAdd(name: "cookie", value: "b=2")
        #expect(changed.values(name: "cookie") == ["b=2"])
    }

    /// Field lines keep the read buffer they came in alive while the request lasts: a usual
    /// buffer is kept, a large one gives way to a copy of the lines.
    @Test func linesInALargeReadBufferAreCopied() throws {
        let wire = "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n"
        for (capacity, copied) in [(2048, false), (65536, true)] {
            var buffer = ByteBufferAllocator().buffer(capacity: capacity)
            buffer.writeString(wire)
            var parser = HTTPRequestParser(maxHeadSize: 8192, maxHeaderCount: 32)
            var lines: ByteBuffer?
            try parser.parse(buffer) { part in
                if case .head(let head, _) = part, case .lines(let kept) = head.fields { lines = kept }
            }
            let kept = try #require(lines)
            #expect(String(buffer: kept) == "Host: h\r\nAccept: */*\r\n")
            #expect((kept.storageCapacity < capacity) == copied)
        }
    }

    /// Once something changes the fields (a policy), the head is what was built, and it is
    /// written so: the change goes upstream, and so does everything else.
    @Test func aChangedHeadIsWrittenAsBuilt() throws {
        var head = Self.upstream(try Self.parsed("GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n"))
        head.built.headers.remove(name: "authorization")
        head.built.headers.add(name: "x-user", value: "alice")
        #expect(head.trace == Self.trace)
        #expect(
            Self.written(head) == "GET /a HTTP/1.1\r\nHost: h\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n"
                + "x-forwarded-host: h\r\nx-request-id: r1\r\ntraceparent: \(Self.traceHeader)\r\nx-user: alice\r\n\r\n")
        // A trace set after the build replaces the one in the fields.
        let other = TraceContext(traceID: (1, 2), spanID: 3, flags: 0)
        head.setTrace(other, dropsTracestate: false)
        #expect(head.trace == other)
        #expect(Self.fields(head).filter { $0.hasPrefix("traceparent") }.count == 1)
    }

    /// An HTTP/2 stream's head comes as `HTTPHeaders`; the same fields stay behind.
    @Test func fieldsThatCameAsStringsFollowTheSameRules() {
        let client = ClientRequestHead(
            HTTPRequestHead(
                version: .http2, method: .GET, uri: "/s",
                headers: HTTPHeaders([("host", "example.com"), ("te", "trailers"), ("x-forwarded-proto", "https"), ("accept", "*/*")])))
        #expect(
            Self.written(Self.upstream(client)) == "GET /s HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\nx-forwarded-for: 127.0.0.1\r\n"
                + "x-forwarded-proto: http\r\nx-forwarded-host: example.com\r\nx-request-id: r1\r\ntraceparent: \(Self.traceHeader)\r\n\r\n")
    }

    /// Route header matches read the client's lines where they are.
    @Test func headerLookupReadsTheLines() throws {
        let client = try Self.parsed("GET / HTTP/1.1\r\nHost: h\r\nX-Canary:  yes \r\nx-canary: no\r\n\r\n")
        #expect(client.first(name: "X-CANARY") == "yes")
        #expect(client.first(name: "x-missing") == nil)
    }
}
