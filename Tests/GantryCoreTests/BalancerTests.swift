import Testing

@testable import GantryCore

private struct Loads: EndpointLoads {
    let values: [Int]
    func inFlight(_ index: Int) -> Int { values[index] }
}

private func names(_ count: Int, from start: Int = 0) -> [String] {
    (start..<start + count).map { "127.0.1.\($0):8080" }
}

private func counts(_ balancer: Balancer, picks: Int, seed: UInt64 = 7, loads: [Int]? = nil) -> [Int] {
    var random = FastRandom(seed: seed)
    var cursor = 0
    var result = [Int](repeating: 0, count: balancer.count)
    let loads = Loads(values: loads ?? [Int](repeating: 0, count: balancer.count))
    for _ in 0..<picks {
        result[balancer.pick(cursor: &cursor, loads: loads, random: &random)!] += 1
    }
    return result
}

struct BalancerTests {
    @Test func roundRobinIsExactlyFairAndCycles() {
        let balancer = Balancer(kind: .roundRobin, names: names(4))
        #expect(counts(balancer, picks: 400) == [100, 100, 100, 100])
        var random = FastRandom(seed: 1)
        var cursor = 0
        let sequence = (0..<6).map { _ in balancer.pick(cursor: &cursor, loads: NoLoads(), random: &random)! }
        #expect(sequence == [0, 1, 2, 3, 0, 1])
    }

    @Test func roundRobinSkipsTriedEndpoints() {
        let balancer = Balancer(kind: .roundRobin, names: names(3))
        var random = FastRandom(seed: 1)
        var tried = TriedEndpoints()
        tried.insert(1)
        var cursor = 1
        #expect(balancer.pick(cursor: &cursor, tried: tried, loads: NoLoads(), random: &random) == 2)
        #expect(balancer.pick(cursor: &cursor, tried: tried, loads: NoLoads(), random: &random) == 0)
        #expect(balancer.pick(cursor: &cursor, tried: tried, loads: NoLoads(), random: &random) == 2)
    }

    @Test func everyEndpointTriedMeansAnyMayBePickedAgain() {
        let balancer = Balancer(kind: .random, names: names(2))
        var random = FastRandom(seed: 3)
        var cursor = 0
        var tried = TriedEndpoints()
        tried.insert(0)
        tried.insert(1)
        #expect(balancer.pick(cursor: &cursor, tried: tried, loads: NoLoads(), random: &random) != nil)
    }

    @Test func noEndpointsNoPick() {
        for kind in [BalancerKind.roundRobin, .leastRequest, .random, .consistentHash(.clientIP)] {
            let balancer = Balancer(kind: kind, names: [])
            var random = FastRandom(seed: 1)
            var cursor = 0
            #expect(balancer.pick(cursor: &cursor, key: 42, loads: NoLoads(), random: &random) == nil)
        }
    }

    @Test func randomIsUniform() {
        let result = counts(Balancer(kind: .random, names: names(4)), picks: 40_000)
        for count in result { #expect(abs(count - 10_000) < 500, "\(result)") }
    }

    @Test func randomAvoidsTriedEndpoints() {
        let balancer = Balancer(kind: .random, names: names(4))
        var random = FastRandom(seed: 11)
        var cursor = 0
        var tried = TriedEndpoints()
        tried.insert(2)
        var seen = Set<Int>()
        for _ in 0..<1000 { seen.insert(balancer.pick(cursor: &cursor, tried: tried, loads: NoLoads(), random: &random)!) }
        #expect(seen == [0, 1, 3])
    }

    /// Power of two choices: the busiest endpoint is never chosen (its partner always has
    /// fewer requests), and the others win in proportion to how many partners they beat:
    /// with loads 0 < 1 < 2 < 3, 6/12, 4/12, 2/12 and 0 of the ordered pairs.
    @Test func leastRequestFavoursIdleEndpoints() {
        let result = counts(Balancer(kind: .leastRequest, names: names(4)), picks: 12_000, loads: [0, 1, 2, 3])
        #expect(abs(result[0] - 6000) < 300, "\(result)")
        #expect(abs(result[1] - 4000) < 300, "\(result)")
        #expect(abs(result[2] - 2000) < 300, "\(result)")
        #expect(result[3] == 0)
    }

    @Test func leastRequestWithEqualLoadsIsFair() {
        let result = counts(Balancer(kind: .leastRequest, names: names(3)), picks: 30_000)
        for count in result { #expect(abs(count - 10_000) < 500, "\(result)") }
    }

    @Test func consistentHashSendsAKeyToOneEndpoint() {
        let balancer = Balancer(kind: .consistentHash(.header("x-user")), names: names(5))
        var random = FastRandom(seed: 5)
        var cursor = 0
        for user in 0..<200 {
            let key = StableHash.hash("user-\(user)")
            let first = balancer.pick(cursor: &cursor, key: key, loads: NoLoads(), random: &random)
            for _ in 0..<3 { #expect(balancer.pick(cursor: &cursor, key: key, loads: NoLoads(), random: &random) == first) }
        }
    }

    private func owners(_ balancer: Balancer, names: [String], keys: Int) -> [String] {
        var random = FastRandom(seed: 5)
        var cursor = 0
        return (0..<keys).map { key in
            names[balancer.pick(cursor: &cursor, key: StableHash.hash("key-\(key)"), loads: NoLoads(), random: &random)!]
        }
    }

    @Test func consistentHashSpreadsKeysEvenly() {
        let list = names(5)
        let placement = owners(Balancer(kind: .consistentHash(.clientIP), names: list), names: list, keys: 20_000)
        for name in list {
            let share = placement.filter { $0 == name }.count
            #expect(abs(share - 4000) < 400, "\(name): \(share)")
        }
    }

    /// Adding one endpoint to N moves about 1/(N+1) of the keys, all of them to the new one.
    @Test(arguments: [3, 5, 10])
    func addingAnEndpointMovesAboutOneInNPlusOneKeys(n: Int) {
        let before = names(n)
        let after = names(n + 1)
        let keys = 30_000
        let old = owners(Balancer(kind: .consistentHash(.clientIP), names: before), names: before, keys: keys)
        let new = owners(Balancer(kind: .consistentHash(.clientIP), names: after), names: after, keys: keys)
        let moved = zip(old, new).filter { $0 != $1 }
        let fraction = Double(moved.count) / Double(keys)
        let ideal = 1.0 / Double(n + 1)
        #expect(abs(fraction - ideal) < ideal * 0.25, "moved \(fraction), ideal \(ideal)")
        let toNewEndpoint = moved.filter { $0.1 == after.last! }.count
        #expect(Double(toNewEndpoint) >= Double(moved.count) * 0.9)
    }

    /// Slots follow endpoint names, not positions: the same set in another order places keys the same way.
    @Test func consistentHashIgnoresEndpointOrder() {
        let list = names(4)
        let shuffled = [list[2], list[0], list[3], list[1]]
        #expect(
            owners(Balancer(kind: .consistentHash(.clientIP), names: list), names: list, keys: 2000)
                == owners(Balancer(kind: .consistentHash(.clientIP), names: shuffled), names: shuffled, keys: 2000))
    }

    @Test func consistentHashRetryGoesElsewhereDeterministically() {
        let balancer = Balancer(kind: .consistentHash(.clientIP), names: names(4))
        var random = FastRandom(seed: 5)
        var cursor = 0
        let key = StableHash.hash("10.0.0.7")
        let first = balancer.pick(cursor: &cursor, key: key, loads: NoLoads(), random: &random)!
        var tried = TriedEndpoints()
        tried.insert(first)
        let second = balancer.pick(cursor: &cursor, key: key, tried: tried, loads: NoLoads(), random: &random)!
        #expect(second != first)
        #expect(balancer.pick(cursor: &cursor, key: key, tried: tried, loads: NoLoads(), random: &random) == second)
    }

    @Test func stableHashIsStable() {
        // Fixed values: the hash must not change between versions, or consistent hashing would
        // reshuffle every key on upgrade.
        #expect(StableHash.hash("") == StableHash.mix(0xcbf2_9ce4_8422_2325))
        #expect(StableHash.hash("a") == StableHash.hash(Array("a".utf8)))
        #expect(StableHash.hash("a") != StableHash.hash("b"))
    }
}
