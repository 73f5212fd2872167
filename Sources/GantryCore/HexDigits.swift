/// Lowercase hexadecimal digits, eight at a time. A request's ID (twice) and its
/// `traceparent` are spelled on every proxied request, over a hundred digits, and digit by
/// digit each was a shift, a branch and a store.
public enum HexDigits {
    /// The eight digits of `value`, most significant first, as the bytes of the returned word
    /// in memory: store it as it is (`storeBytes(of:toByteOffset:as:)`) to write them in order.
    @inlinable @inline(__always)
    public static func eight(_ value: UInt32) -> UInt64 {
        // One nibble per byte, the most significant in the top byte.
        var word = UInt64(value)
        word = (word | (word << 16)) & 0x0000_FFFF_0000_FFFF
        word = (word | (word << 8)) & 0x00FF_00FF_00FF_00FF
        word = (word | (word << 4)) & 0x0F0F_0F0F_0F0F_0F0F
        // 1 in each byte whose nibble is 10 or more; adding 6 never carries into the next byte.
        let letters = ((word + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        // "0" is 0x30, and "a" comes 39 after "0" + 10.
        word += 0x3030_3030_3030_3030 + letters * 39
        return word.bigEndian
    }

    /// The sixteen digits of `value` at `offset`.
    @inlinable @inline(__always)
    public static func write(_ value: UInt64, into out: UnsafeMutableRawBufferPointer, at offset: Int) {
        precondition(offset >= 0 && offset + 16 <= out.count)
        out.storeBytes(of: eight(UInt32(truncatingIfNeeded: value >> 32)), toByteOffset: offset, as: UInt64.self)
        out.storeBytes(of: eight(UInt32(truncatingIfNeeded: value)), toByteOffset: offset + 8, as: UInt64.self)
    }
}
