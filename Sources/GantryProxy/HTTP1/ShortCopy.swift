extension UnsafeMutableRawBufferPointer {
    /// Copies `source` to the start of this buffer, which has room for it. Heads are written
    /// from dozens of pieces of a few to a few dozen bytes each (names, values, a status line),
    /// and a call to `memmove` for each cost more than the copy: up to sixteen bytes are moved
    /// here as two words that may overlap, longer pieces by `copyMemory`.
    @inline(__always)
    func copyShort(from source: UnsafeRawBufferPointer) {
        let count = source.count
        precondition(count <= self.count)
        switch count {
        case 8...16:
            let first = source.loadUnaligned(as: UInt64.self)
            let last = source.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            storeBytes(of: first, as: UInt64.self)
            storeBytes(of: last, toByteOffset: count - 8, as: UInt64.self)
        case 4..<8:
            let first = source.loadUnaligned(as: UInt32.self)
            let last = source.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
            storeBytes(of: first, as: UInt32.self)
            storeBytes(of: last, toByteOffset: count - 4, as: UInt32.self)
        case 0..<4:
            for index in 0..<count { self[index] = source[index] }
        default:
            copyMemory(from: source)
        }
    }

    /// `copyShort(from:)` at `offset`; returns the offset after the copy.
    @inline(__always)
    func copyShort(from source: UnsafeRawBufferPointer, at offset: Int) -> Int {
        UnsafeMutableRawBufferPointer(rebasing: self[offset...]).copyShort(from: source)
        return offset + source.count
    }

    /// The same for a literal.
    @inline(__always)
    func copyShort(from literal: StaticString, at offset: Int) -> Int {
        literal.withUTF8Buffer { copyShort(from: UnsafeRawBufferPointer($0), at: offset) }
    }
}
