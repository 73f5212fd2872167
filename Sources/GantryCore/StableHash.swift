/// A 64-bit hash that is the same in every process and on every machine, unlike `Hasher`,
/// which is seeded per process. Consistent hashing needs that: two gantry instances, or one
/// instance before and after a restart, must send a key to the same endpoint.
/// FNV-1a over the bytes, then the MurmurHash3 finaliser to spread the low bits.
public enum StableHash {
    @inlinable
    public static func hash(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0) -> UInt64 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
        return mix(value)
    }

    @inlinable
    public static func hash(_ string: some StringProtocol, seed: UInt64 = 0) -> UInt64 {
        hash(string.utf8, seed: seed)
    }

    @inlinable
    public static func mix(_ input: UInt64) -> UInt64 {
        var k = input
        k ^= k >> 33
        k = k &* 0xff51_afd7_ed55_8ccd
        k ^= k >> 33
        k = k &* 0xc4ce_b9fe_1a85_ec53
        k ^= k >> 33
        return k
    }
}
