import Testing

@testable import GantryCore

struct RequestIDTests {
    @Test(arguments: [
        ("3b0e9a3c-6f1d-4a9f-9b59-0c4b7e1f2a11", true),
        ("01HF8Z2Q7K3VJ4X6W9Y0ABCDEF", true),
        ("abc+/=@:._-", true),
        ("", false),
        ("has space", false),
        ("quote\"", false),
        ("new\nline", false),
        (String(repeating: "a", count: 128), true),
        (String(repeating: "a", count: 129), false),
    ])
    func sanity(value: String, sane: Bool) {
        #expect(RequestIdentifier.isSane(value) == sane)
    }

    @Test func generatedIDsAreVersion4UUIDs() {
        var random = FastRandom(seed: 99)
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = RequestIdentifier.random(using: &random).description
            let bytes = Array(id.utf8)
            #expect(bytes.count == 36)
            #expect([8, 13, 18, 23].allSatisfy { bytes[$0] == UInt8(ascii: "-") })
            #expect(bytes[14] == UInt8(ascii: "4"))
            #expect([UInt8(ascii: "8"), UInt8(ascii: "9"), UInt8(ascii: "a"), UInt8(ascii: "b")].contains(bytes[19]))
            #expect(RequestIdentifier.isSane(id))
            seen.insert(id)
        }
        #expect(seen.count == 1000)
    }

    /// The generator's two numbers, in order, as the UUID's hex digits, with the version and
    /// variant bits set.
    @Test func generatedIDsSpellTheRandomBits() {
        struct Fixed: RandomNumberGenerator {
            var values: [UInt64] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]
            mutating func next() -> UInt64 { values.removeFirst() }
        }
        var fixed = Fixed()
        #expect(RequestIdentifier.random(using: &fixed).description == "01234567-89ab-4def-bedc-ba9876543210")
    }
}

struct RetryPolicyTests {
    @Test(arguments: [
        // failure, attempts so far, method, has body, retried?
        (AttemptFailure.connectFailure, 1, "POST", true, true),  // nothing was sent
        (.connectFailure, 3, "GET", false, false),  // out of retries (2)
        (.reset, 1, "GET", false, true),
        (.reset, 1, "PUT", false, true),
        (.reset, 1, "PUT", true, false),  // a body in flight cannot be replayed
        (.reset, 1, "POST", false, false),  // not idempotent
        (.reset, 1, "PATCH", false, false),
        (.timeout, 1, "GET", false, false),  // not in the default retryOn
        (.gatewayError, 1, "GET", false, false),
    ])
    func defaults(failure: AttemptFailure, attempts: Int, method: String, hasBody: Bool, retried: Bool) {
        #expect(RetryPolicy().shouldRetry(after: failure, attempts: attempts, method: method, hasBody: hasBody) == retried)
    }

    @Test func configuredRetryOnAndAttempts() {
        let policy = RetryPolicy(retries: 1, retryOn: [.timeout, .gatewayError])
        #expect(policy.shouldRetry(after: .timeout, attempts: 1, method: "GET", hasBody: false))
        #expect(!policy.shouldRetry(after: .timeout, attempts: 2, method: "GET", hasBody: false))
        #expect(!policy.shouldRetry(after: .connectFailure, attempts: 1, method: "GET", hasBody: false))
        #expect(!RetryPolicy(retries: 0).shouldRetry(after: .connectFailure, attempts: 1, method: "GET", hasBody: false))
    }
}

struct HopByHopTests {
    @Test func connectionNominatesFields() {
        #expect(HopByHop.nominated(by: ["keep-alive, X-Debug", " Upgrade ,,"]) == ["keep-alive", "x-debug", "upgrade"])
    }

    @Test func theFixedList() {
        #expect(HopByHop.fields == ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"])
    }
}

struct EndpointAddressTests {
    @Test(arguments: [
        ("127.0.0.1:9001", "127.0.0.1", 9001),
        ("localhost:80", "localhost", 80),
        ("[::1]:8080", "::1", 8080),
    ])
    func parses(text: String, host: String, port: Int) throws {
        let address = try #require(EndpointAddress(parsing: text))
        #expect(address.host == host)
        #expect(address.port == port)
        #expect(address.description == text)
        #expect(address == EndpointAddress(host: host, port: port))
    }

    /// Addresses are equal, and hash alike, by host and port alone, however they were made.
    @Test func equalityAndHashing() {
        let pool: Set = [EndpointAddress(host: "10.0.0.1", port: 80), EndpointAddress(host: "10.0.0.1", port: 81)]
        #expect(pool.contains(EndpointAddress(parsing: "10.0.0.1:80")!))
        #expect(pool.contains(EndpointAddress(host: String("10.0.0.1:81".prefix(8)), port: 81)))
        #expect(!pool.contains(EndpointAddress(host: "10.0.0.2", port: 80)))
        #expect(!pool.contains(EndpointAddress(host: "10.0.0.1", port: 82)))
        #expect(EndpointAddress(host: "a", port: 1) != EndpointAddress(host: "b", port: 1))
    }

    @Test(arguments: ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", ":80", "::1:80", "[::1]80", "h:p"])
    func rejects(text: String) {
        #expect(EndpointAddress(parsing: text) == nil)
    }
}

/// Frame boundaries of a WebSocket stream (RFC 6455 §5.2), whatever way its bytes are cut.
@Suite struct WebSocketFrameBoundaryTests {
    /// A masked text frame, an unmasked 300-byte binary frame (16-bit length), an empty ping,
    /// and a frame with a 64-bit length of 70,000 bytes.
    static let frames: [[UInt8]] = [
        [0x81, 0x85, 1, 2, 3, 4] + Array("hello".utf8).enumerated().map { $0.element ^ UInt8($0.offset % 4 + 1) },
        [0x82, 126, 0x01, 0x2C] + [UInt8](repeating: 7, count: 300),
        [0x89, 0x00],
        [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70] + [UInt8](repeating: 9, count: 70_000),
    ]

    @Test func boundariesAreFoundInEveryCut() {
        let stream = Self.frames.flatMap { $0 }
        var ends: Set<Int> = []
        var total = 0
        for frame in Self.frames {
            total += frame.count
            ends.insert(total)
        }
        for step in [1, 3, 7, 1000, stream.count] {
            var boundary = WebSocketFrameBoundary()
            var offset = 0
            while offset < stream.count {
                let next = min(offset + step, stream.count)
                stream[offset..<next].withUnsafeBytes { boundary.consume($0) }
                offset = next
                #expect(boundary.atBoundary == ends.contains(offset), "step \(step), offset \(offset)")
            }
        }
    }

    @Test func theGoingAwayFramesSay1001() {
        #expect(WebSocketFrameBoundary.goingAwayFromServer == [0x88, 0x02, 0x03, 0xE9])
        let masked = WebSocketFrameBoundary.goingAwayFromClient(mask: 0x0102_0304)
        #expect(masked == [0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE9 ^ 2])
        var boundary = WebSocketFrameBoundary()
        masked.withUnsafeBytes { boundary.consume($0) }
        #expect(boundary.atBoundary)
    }
}
