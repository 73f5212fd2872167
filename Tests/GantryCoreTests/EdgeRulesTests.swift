import Testing

@testable import GantryCore

/// SNI certificate choice and load-balancer target health, as table tests.
struct EdgeRulesTests {
    static let selector = CertificateSelector(names: [["example.com", "*.example.com"], ["api.example.com"], ["*.test", "other.test"]])

    @Test(arguments: [
        ("example.com", 0), ("EXAMPLE.com.", 0), ("www.example.com", 0),
        ("api.example.com", 1),  // exact beats wildcard
        ("a.b.example.com", 0),  // a wildcard covers one label only: falls back to the default
        ("other.test", 2), ("x.test", 2), ("unknown.org", 0), ("", 0),
    ])
    func certificateBySNI(name: String, expected: Int) {
        #expect(Self.selector.select(name) == expected)
    }

    @Test func noSNIGetsTheDefault() {
        #expect(Self.selector.select(nil) == 0)
    }

    @Test func targetsTurnUnhealthyAndBackAfterTheirThresholds() {
        var health = TargetHealth<String>(healthyThreshold: 3, unhealthyThreshold: 2)
        #expect(health.isHealthy("a"))  // unchecked targets take traffic
        // Each check, and whether it changed the target's health.
        let script: [(passed: Bool, changes: Bool, healthyAfter: Bool)] = [
            (false, false, true), (false, true, false),  // two failures in a row take it out
            (true, false, false), (false, false, false),  // a success, then the streak starts over
            (true, false, false), (true, false, false), (true, true, true),  // three in a row bring it back
            (false, false, true), (true, false, true), (false, false, true), (true, false, true),  // flapping stays in
        ]
        for (step, check) in script.enumerated() {
            let changed = health.record("a", passed: check.passed, failure: check.passed ? nil : "status 503")
            #expect(changed == check.changes, "step \(step)")
            #expect(health.isHealthy("a") == check.healthyAfter, "step \(step)")
        }
        #expect(health.status(of: "a").lastFailure == nil)
        health.record("b", passed: false, failure: "refused")
        health.record("b", passed: false, failure: "refused")
        #expect(!health.isHealthy("b") && health.status(of: "b").lastFailure == "refused")
        // Targets that leave are forgotten, and come back fresh.
        health.retain(["a"])
        #expect(health.isHealthy("b"))
    }

    @Test(arguments: [
        ("200", 200, true), ("200", 204, false), ("200,204", 204, true), ("200-299", 299, true), ("200-299", 300, false),
        (" 200 - 399 ", 302, true),
    ])
    func statusMatcher(text: String, status: Int, passes: Bool) throws {
        #expect(try #require(StatusMatcher(text)).matches(status) == passes)
    }

    @Test(arguments: ["", "2xx", "200-", "99", "600", "300-200", "200,,204"])
    func badMatchersAreRejected(_ text: String) {
        #expect(StatusMatcher(text) == nil)
    }
}

/// W3C trace context parsing and propagation.
struct TraceContextTests {
    @Test(arguments: [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", true),  // later versions: first four fields
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false),  // version 00 has exactly four
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", false),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false),
        ("", false),
    ])
    func parsing(header: String, valid: Bool) {
        #expect((TraceContext(header: header) != nil) == valid)
    }

    @Test func childKeepsTheTraceAndRoundTrips() throws {
        var random = FastRandom(seed: 3)
        let parent = try #require(TraceContext(header: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
        #expect(TraceContext(header: parent.header) == parent)
        let child = parent.child(using: &random)
        #expect(child.traceIDHex == "4bf92f3577b34da6a3ce929d0e0e4736" && child.spanID != parent.spanID && !child.sampled)
        #expect(parent.child(using: &random, sampled: true).sampled)
        let fresh = TraceContext.start(using: &random, sampled: false)
        #expect(TraceContext(header: fresh.header) == fresh && fresh.header.count == 55)
    }
}

/// The hex spelling of request IDs and trace headers, against the standard library's.
struct HexDigitsTests {
    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return String(repeating: "0", count: digits - text.count) + text
    }

    @Test func wordsSpellEveryDigitInOrder() {
        var random = FastRandom(seed: 11)
        let values: [UInt64] = [0, 1, 9, 10, 15, 0x0123_4567_89AB_CDEF, 0xFEDC_BA98_7654_3210, .max] + (0..<500).map { _ in random.next() }
        for value in values {
            let spelled = [UInt8](unsafeUninitializedCapacity: 18) { buffer, count in
                HexDigits.write(value, into: UnsafeMutableRawBufferPointer(buffer), at: 1)
                count = 18
            }
            #expect(String(decoding: spelled[1..<17], as: UTF8.self) == Self.hex(value, digits: 16))
        }
    }

    @Test func requestIDsAndTraceHeadersUseThem() {
        var random = FastRandom(seed: 12)
        for _ in 0..<200 {
            guard case .uuid(let high, let low) = RequestIdentifier.random(using: &random) else { Issue.record("not a UUID"); return }
            let digits = Self.hex(high, digits: 16) + Self.hex(low, digits: 16)
            let groups = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { range in
                String(digits.dropFirst(range.lowerBound).prefix(range.count))
            }
            #expect(RequestIdentifier.uuid(high: high, low: low).description == groups.joined(separator: "-"))
            let flags = UInt8(truncatingIfNeeded: random.next() as UInt64)
            let trace = TraceContext(traceID: (high, low), spanID: random.next(), flags: flags)
            #expect(trace.header == "00-\(digits)-\(Self.hex(trace.spanID, digits: 16))-\(Self.hex(UInt64(flags), digits: 2))")
        }
    }
}
