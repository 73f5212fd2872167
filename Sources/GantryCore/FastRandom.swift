/// wyrand (Wang Yi, public domain): a small, fast, non-cryptographic generator for balancing
/// decisions and request IDs on the hot path. Seeded per event loop from the system generator;
/// tests seed it for repeatable distributions.
public struct FastRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0xa076_1d64_78bd_642f
        let product = state.multipliedFullWidth(by: state ^ 0xe703_7ed1_a0b4_28db)
        return product.high ^ product.low
    }
}
