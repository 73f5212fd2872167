import Foundation
import GantryPods
import Testing

/// Loopback blocks as several gantry processes share them, each allocator standing in for one
/// process: dropping it closes its lock files, as the end of a killed process does. Blocks
/// 200 to 202 and a lock directory of the test's own keep real gantries out of the way.
struct LoopbackAddressesTests {
    let locks = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-loopback-\(UUID().uuidString)").path
    let port = 8080

    func allocator(_ owner: String) -> LoopbackAddresses {
        LoopbackAddresses(blocks: 200...202, owner: owner, lockDirectory: locks)
    }

    @Test func aBlockIsItsHoldersWhileItRuns() throws {
        let first = allocator("/state/a")
        let second = allocator("/state/b")
        #expect(first.allocate(port: port) == "127.0.200.1")
        #expect(first.allocate(port: port) == "127.0.200.2")
        #expect(second.allocate(port: port) == "127.0.201.1")
        #expect(!second.claim("127.0.200.1"))
        #expect(!second.claim("127.0.9.1"), "outside its blocks")
    }

    /// The pods of a killed gantry run on at their addresses: another gantry starting before
    /// the killed one's successor leaves their block alone, and the successor takes them over.
    @Test func theBlockOfAKilledGantryWaitsForTheNextOneOnItsStateDirectory() throws {
        var killed: LoopbackAddresses? = allocator("/state/a")
        let address = try #require(killed?.allocate(port: port))
        killed = nil
        let other = allocator("/state/b")
        #expect(other.allocate(port: port) == "127.0.201.1")
        let successor = allocator("/state/a")
        #expect(successor.claim(address))
        #expect(successor.allocate(port: port) == "127.0.200.2", "the block is its own again")
    }

    @Test func aBlockKeptForAnotherIsTakenOnlyWhenNoOtherIsFree() throws {
        var killed: LoopbackAddresses? = allocator("/state/a")
        _ = killed?.allocate(port: port)
        killed = nil
        let holders = [allocator("/state/b"), allocator("/state/c")]
        #expect(holders.map { $0.allocate(port: port) } == ["127.0.201.1", "127.0.202.1"])
        #expect(allocator("/state/d").allocate(port: port) == "127.0.200.1")
    }

    /// Once every pod has stopped, nothing is kept: the next gantry of any state directory may
    /// take the block.
    @Test func aCleanStopKeepsNothing() throws {
        var stopped: LoopbackAddresses? = allocator("/state/a")
        _ = stopped?.allocate(port: port)
        stopped?.disown()
        stopped = nil
        #expect(allocator("/state/b").allocate(port: port) == "127.0.200.1")
    }
}
