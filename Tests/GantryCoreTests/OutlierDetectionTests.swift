import Testing

@testable import GantryCore

struct OutlierDetectionTests {
    let policy = OutlierDetection(consecutiveConnectFailures: 3, baseEjectionTime: .seconds(30), maxEjectionTime: .seconds(75))
    let second: UInt64 = 1_000_000_000

    @Test func consecutiveConnectFailuresEjectForGrowingTimes() {
        let endpoint = EndpointState(address: EndpointAddress(host: "127.0.100.1", port: 8080))
        #expect(!endpoint.failedLocally(now: 0, policy: policy))
        #expect(!endpoint.failedLocally(now: 0, policy: policy))
        endpoint.answered()  // the streak is broken
        #expect(!endpoint.failedLocally(now: 0, policy: policy))
        #expect(!endpoint.failedLocally(now: 0, policy: policy))
        #expect(endpoint.failedLocally(now: 0, policy: policy))
        #expect(endpoint.isEjected(now: 29 * second))
        #expect(!endpoint.isEjected(now: 30 * second))
        for _ in 0..<3 { _ = endpoint.failedLocally(now: 40 * second, policy: policy) }
        #expect(endpoint.isEjected(now: 99 * second))  // second ejection: 60 s
        #expect(!endpoint.isEjected(now: 100 * second))
        for _ in 0..<3 { _ = endpoint.failedLocally(now: 200 * second, policy: policy) }
        #expect(!endpoint.isEjected(now: 275 * second))  // third: 90 s, capped at 75 s
        endpoint.readmit()
        #expect(!endpoint.isEjected(now: 0))
    }

    @Test func ejectedEndpointsAreSkippedUnlessAllAre() {
        let states = (1...3).map { EndpointState(address: EndpointAddress(host: "127.0.100.\($0)", port: 8080)) }
        let set = EndpointSet(kind: .roundRobin, endpoints: states)
        for _ in 0..<3 { _ = states[0].failedLocally(now: 0, policy: policy) }
        let excluded = set.excluded(tried: [], now: second)
        #expect(excluded.contains(0) && !excluded.contains(1) && !excluded.contains(2))
        for _ in 0..<3 { _ = states[1].failedLocally(now: 0, policy: policy) }
        let triedThird = set.excluded(tried: [states[2].address], now: second)
        #expect(triedThird == set.tried([states[2].address]))  // panic: nothing left, so ejections are ignored
    }
}
