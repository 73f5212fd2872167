/// Maglev consistent hashing (Eisenbud et al., NSDI 2016), as Envoy's `MAGLEV` policy.
///
/// Each endpoint walks its own permutation of the table's slots, taking turns to claim the next
/// free slot, so every endpoint owns M/N slots (±1) and adding one endpoint to N moves about
/// 1/(N+1) of the keys. The table is built when the endpoint set changes; a pick is one lookup.
public struct MaglevTable: Sendable {
    /// Prime, as the algorithm requires; Envoy's default size.
    public static let defaultSize = 65_537

    /// Slot → endpoint index.
    @usableFromInline let slots: [UInt16]

    /// - Parameter names: stable endpoint names (their addresses), so slots follow endpoints, not
    ///   positions in the list.
    public init(names: [String], size: Int = MaglevTable.defaultSize) {
        precondition(names.count <= Int(UInt16.max), "too many endpoints for one Maglev table")
        guard !names.isEmpty else {
            slots = []
            return
        }
        let m = UInt64(size)
        let offsets = names.map { StableHash.hash($0, seed: 0x6d61_676c) % m }
        let skips = names.map { StableHash.hash($0, seed: 0x6576_3131) % (m - 1) + 1 }
        var next = [UInt64](repeating: 0, count: names.count)
        var table = [UInt16](repeating: UInt16.max, count: size)
        var filled = 0
        while true {
            for endpoint in names.indices {
                var slot = (offsets[endpoint] &+ next[endpoint] &* skips[endpoint]) % m
                while table[Int(slot)] != UInt16.max {
                    next[endpoint] += 1
                    slot = (offsets[endpoint] &+ next[endpoint] &* skips[endpoint]) % m
                }
                table[Int(slot)] = UInt16(endpoint)
                next[endpoint] += 1
                filled += 1
                if filled == size {
                    slots = table
                    return
                }
            }
        }
    }

    public var isEmpty: Bool { slots.isEmpty }

    /// The endpoint index for a key hash.
    @inlinable
    public func lookup(_ hash: UInt64) -> Int {
        Int(slots[Int(hash % UInt64(slots.count))])
    }

    /// The endpoint at the `n`-th slot after the key's own, to skip endpoints a retry already tried.
    func lookup(_ hash: UInt64, probe: Int) -> Int {
        Int(slots[Int((hash &+ UInt64(probe)) % UInt64(slots.count))])
    }
}
