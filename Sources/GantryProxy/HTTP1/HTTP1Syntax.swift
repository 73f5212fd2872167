import GantryCore
import NIOCore
import NIOHTTP1

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP/1.1 syntax (RFC 9112) gantry's two parsers share, ``HTTPRequestParser`` for clients
/// and ``HTTPResponseParser`` for upstreams: finding a head's end and its lines, field lines,
/// chunk-size lines and the byte classes. Strict where the RFC lets a recipient be: a bare LF,
/// a bare CR, an obs-fold and whitespace before a field's colon are errors.
enum HTTP1Syntax {
    static let crlf = UInt16(0x0D0A)
    /// A chunk-size line with its extensions.
    static let maxChunkLineSize = 4096

    /// The offset just past the blank line that ends a head (the bytes up to it include both
    /// CRLFs), or nil if it has not arrived. A bare LF is an error at once: a client that ends
    /// its lines with LF alone would otherwise wait for a CRLF CRLF that never comes.
    static func find(crlfcrlf buffer: ByteBuffer, from start: Int) throws -> Int? {
        try buffer.withUnsafeReadableBytes { bytes in
            var index = start
            while let lf = firstLF(in: bytes, from: index) {
                guard lf > 0, bytes[lf - 1] == UInt8(ascii: "\r") else { throw HTTPParserError.lfExpected }
                if lf >= 3, bytes[lf - 2] == UInt8(ascii: "\n"), bytes[lf - 3] == UInt8(ascii: "\r") { return lf + 1 }
                index = lf + 1
            }
            return nil
        }
    }

    /// The index of the first LF at or after `start`. A head's bytes are searched for line
    /// ends twice, once for its end and once line by line, and most lines are short: the first
    /// words are read here, eight bytes at a time, where a call to `memchr` cost more than the
    /// search; `memchr`, which reads many bytes at a time, takes what is left of a long line.
    static func firstLF(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard start < bytes.count, let base = bytes.baseAddress else { return nil }
        var index = start
        let inline = min(bytes.count, start + 48)
        while index + 8 <= inline {
            let found = bytesEqual(UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)), to: 0x0A)
            if found != 0 { return index + found.trailingZeroBitCount / 8 }
            index += 8
        }
        if bytes.count - index < 16 {
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "\n") { return index }
                index += 1
            }
            return nil
        }
        guard let found = memchr(base + index, Int32(UInt8(ascii: "\n")), bytes.count - index) else { return nil }
        return UnsafeRawPointer(found) - base
    }

    /// The offset of the CRLF ending the first line (the CRLF not included), or nil. Throws if
    /// no line end comes within `limit` bytes.
    static func find(crlf buffer: ByteBuffer, limit: Int) throws -> Int? {
        let found = buffer.withUnsafeReadableBytes { firstLF(in: $0, from: 0) }
        guard let lf = found else {
            if buffer.readableBytes > limit { throw HTTPParserError.invalidChunkSize }
            return nil
        }
        guard lf <= limit else { throw HTTPParserError.invalidChunkSize }
        guard lf > 0, buffer.getInteger(at: buffer.readerIndex + lf - 1, as: UInt8.self) == UInt8(ascii: "\r") else {
            throw HTTPParserError.lfExpected
        }
        return lf - 1
    }

    /// Whether the buffer's readable bytes start with CRLF.
    static func startsWithCRLF(_ buffer: ByteBuffer) -> Bool {
        buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == crlf
    }

    /// The lines of a head, each without its CRLF. A bare LF is an error; a bare CR is caught
    /// by the checks on the line's bytes.
    struct Lines {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        mutating func next() throws -> UnsafeRawBufferPointer {
            guard let lf = firstLF(in: bytes, from: index), lf > index, bytes[lf - 1] == UInt8(ascii: "\r") else {
                throw HTTPParserError.lfExpected
            }
            defer { index = lf + 1 }
            return UnsafeRawBufferPointer(rebasing: bytes[index..<(lf - 1)])
        }
    }

    /// What the fields say about framing and the connection, learnt as they go by.
    struct FieldFacts {
        var contentLength: Int?
        var transferEncodings: [String] = []
        var close = false
        var keepAlive = false
        /// The fields go on to another hop, as an upstream's response does: hop-by-hop fields
        /// (RFC 9110 §7.6.1) are learned from but not kept, and neither is `X-Request-ID`,
        /// which the proxy stamps with the request's own. Done here, on bytes, because a pass
        /// over the built strings afterwards cost more than parsing them.
        var forwarding = false
        /// Lowercased names a `Connection` field nominates besides `close` and `keep-alive`:
        /// hop-by-hop too, but known only once the whole section is read. Collected only when
        /// ``forwarding``.
        var nominated: [String] = []

        /// Whether the final transfer coding is chunked, once: nil without `Transfer-Encoding`.
        /// Throws when chunked is listed but not last, or more than once.
        func chunked() throws -> Bool? {
            guard !transferEncodings.isEmpty else { return nil }
            let codings = HTTPList.lowercasedTokens(in: transferEncodings)
            let chunkedCount = codings.lazy.filter { $0 == "chunked" }.count
            if chunkedCount == 0 { return false }
            guard chunkedCount == 1, codings.last == "chunked" else { throw HTTPParserError.invalidHeaderToken }
            return true
        }

        /// Keep-alive by RFC 9112 §9.3: HTTP/1.1 unless `close`, HTTP/1.0 only with `keep-alive`.
        func keepsAlive(minorVersion: Int) -> Bool {
            !close && (minorVersion >= 1 || keepAlive)
        }

        /// Learns what `name` and `value` say about framing and the connection, and returns
        /// whether the field is kept.
        mutating func learn(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws -> Bool {
            switch name.count {
            case 14 where equalsLowercase(name, "content-length"):
                // One field, one decimal number. RFC 9110 §8.6 would allow merging repeated or
                // listed equal values, but they would be forwarded as sent, to a recipient that
                // may read them otherwise; nginx refuses them too.
                guard contentLength == nil, !value.isEmpty, value.count <= 18 else { throw HTTPParserError.invalidContentLength }
                var length = 0
                for digit in value {
                    guard digit >= 0x30, digit <= 0x39 else { throw HTTPParserError.invalidContentLength }
                    length = length * 10 + Int(digit - 0x30)
                }
                contentLength = length
                return true
            case 17 where equalsLowercase(name, "transfer-encoding"):
                transferEncodings.append(String(decoding: value, as: UTF8.self))
                return !forwarding
            case 10 where equalsLowercase(name, "connection"):
                // Split by hand: `split` would build an array for every response.
                var start = 0
                while start <= value.count {
                    let end = value[start...].firstIndex(of: UInt8(ascii: ",")) ?? value.count
                    let token = trimmed(UnsafeRawBufferPointer(rebasing: value[start..<end]))
                    start = end + 1
                    if token.count == 5, equalsLowercase(token, "close") {
                        close = true
                    } else if token.count == 10, equalsLowercase(token, "keep-alive") {
                        keepAlive = true
                    } else if forwarding, !token.isEmpty, !equalsLowercase(token, "content-length") {
                        // The framing stays: without it the body could not be read.
                        nominated.append(String(decoding: token, as: UTF8.self).lowercased())
                    }
                }
                return !forwarding
            case 2, 7, 10, 12, 16:
                guard forwarding else { return true }
                return !(isOtherHopByHop(name) || equalsLowercase(name, "x-request-id"))
            default:
                return true
            }
        }

        /// Whether `name`, lowercased, is one a `Connection` field nominated.
        func isNominated(_ name: String) -> Bool {
            !nominated.isEmpty && nominated.contains(name.lowercased())
        }
    }

    /// Field lines up to and including the blank line that ends the section: `field-name ":"
    /// OWS field-value OWS`. A line starting with whitespace (obs-fold) is an error, as RFC
    /// 9112 §5.2 allows a proxy to treat it; so is whitespace before the colon (§5.1).
    static func fields(_ lines: inout Lines, maxCount: Int, facts: inout FieldFacts) throws -> [(String, String)] {
        var fields: [(String, String)] = []
        fields.reserveCapacity(8)
        try scanFields(&lines, maxCount: maxCount, facts: &facts) { name, value, _ in
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return fields
    }

    /// The same pass as ``fields(_:maxCount:facts:)`` without building strings: `kept` gets
    /// each field the facts keep, with the offsets in `lines.bytes` of its whole line (CRLF
    /// included).
    static func scanFields(
        _ lines: inout Lines, maxCount: Int, facts: inout FieldFacts,
        kept: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ line: Range<Int>) -> Void
    ) throws {
        var count = 0
        while true {
            let start = lines.index
            let line = try lines.next()
            if line.isEmpty { return }
            guard count < maxCount else { throw HTTPParserError.headerOverflow }
            count += 1
            let (name, value) = try field(line)
            if try facts.learn(name: name, value: value) { kept(name, value, start..<lines.index) }
        }
    }

    /// One field line's name and value (without the value's surrounding whitespace), checked.
    static func field(_ line: UnsafeRawBufferPointer) throws -> (name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        // The name is checked as the colon is looked for: one pass over it, not two, and eight
        // bytes at a time while they are letters, digits and dashes, as nearly all names are.
        var colon = 0
        while colon + 8 <= line.count {
            let word = UInt64(littleEndian: line.loadUnaligned(fromByteOffset: colon, as: UInt64.self))
            guard !hasColon(word), isSimpleToken(word) else { break }
            colon += 8
        }
        while colon < line.count, line[colon] != UInt8(ascii: ":") {
            guard isTokenByte(line[colon]) else { throw HTTPParserError.invalidHeaderToken }
            colon += 1
        }
        guard colon > 0, colon < line.count else { throw HTTPParserError.invalidHeaderToken }
        let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
        let value = trimmed(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
        guard isFieldValue(value) else { throw HTTPParserError.invalidHeaderToken }
        return (name, value)
    }

    /// Whether one of the word's bytes is a colon.
    @inline(__always)
    static func hasColon(_ word: UInt64) -> Bool {
        bytesEqual(word, to: 0x3A) != 0
    }

    /// The high bit set in the first of the word's bytes (little-endian) equal to `byte`, and
    /// maybe in bytes after it, never in one before: XORed with `byte` in every lane, a match is
    /// a zero byte, found by the usual zero-byte test.
    @inline(__always)
    static func bytesEqual(_ word: UInt64, to byte: UInt8) -> UInt64 {
        let flipped = word ^ (UInt64(byte) &* 0x0101_0101_0101_0101)
        return (flipped &- 0x0101_0101_0101_0101) & ~flipped & 0x8080_8080_8080_8080
    }

    /// Whether each of the word's bytes is an ASCII letter, digit or `-`: all token bytes.
    /// Byte by byte, with no carry between bytes: for bytes below 0x80, `(b | 0x80) - m` has its
    /// high bit set when `b >= m`, and `(n | 0x80) - b` when `b <= n`.
    @inline(__always)
    static func isSimpleToken(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        guard word & high == 0 else { return false }
        func inRange(_ bytes: UInt64, _ low: UInt64, _ top: UInt64) -> UInt64 {
            ((bytes | high) &- low &* ones) & ((top | 0x80) &* ones &- bytes) & high
        }
        let letters = inRange(word | 0x2020_2020_2020_2020, 0x61, 0x7A)  // either case
        return letters | inRange(word, 0x30, 0x39) | inRange(word, 0x2D, 0x2D) == high
    }

    /// A trailer section (its bytes end with the blank line), as fields.
    static func trailerFields(_ section: ByteBuffer, maxCount: Int) throws -> HTTPHeaders {
        try section.withUnsafeReadableBytes { bytes in
            var lines = Lines(bytes: bytes)
            var facts = FieldFacts()
            return HTTPHeaders(try fields(&lines, maxCount: maxCount, facts: &facts))
        }
    }

    /// `chunk-size [chunk-ext]` exactly as RFC 9112 §7.1 writes it:
    /// `1*HEXDIG *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )`. The
    /// extensions are checked and dropped. Whitespace after the size with no `;` after it, a `;`
    /// without a name, an unterminated quoted string or a bad escape is an error: a recipient
    /// that reads such a line otherwise than the next hop is how requests get smuggled.
    static func chunkSize(_ line: ByteBuffer) throws -> Int {
        try line.withUnsafeReadableBytes { bytes in
            var size = 0
            var index = 0
            while index < bytes.count, let digit = hexValue(bytes[index]) {
                guard size <= (Int.max >> 4) else { throw HTTPParserError.invalidChunkSize }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { throw HTTPParserError.invalidChunkSize }
            guard index < bytes.count else { return size }
            try chunkExtensions(UnsafeRawBufferPointer(rebasing: bytes[index...]))
            return size
        }
    }

    /// `*( BWS ";" BWS ext-name [ BWS "=" BWS chunk-ext-val ] )`, the whole of `bytes`.
    private static func chunkExtensions(_ bytes: UnsafeRawBufferPointer) throws {
        var index = 0
        func skipWhitespace() {
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
        }
        func token() throws {
            let start = index
            while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
            guard index > start else { throw HTTPParserError.invalidChunkSize }
        }
        while index < bytes.count {
            skipWhitespace()  // BWS, which only a ";" may follow
            guard index < bytes.count, bytes[index] == UInt8(ascii: ";") else { throw HTTPParserError.invalidChunkSize }
            index += 1
            skipWhitespace()
            try token()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { continue }
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                index = try quotedStringEnd(bytes, from: index)
            } else {
                try token()
            }
        }
    }

    /// The index just past the quoted-string (RFC 9110 §5.6.4) that opens at `start`: qdtext
    /// and quoted-pairs up to the closing quote, which must come.
    private static func quotedStringEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) throws -> Int {
        var index = start + 1
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                return index + 1
            case UInt8(ascii: "\\"):
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                guard index + 1 < bytes.count, isFieldValueByte(bytes[index + 1]) else { throw HTTPParserError.invalidChunkSize }
                index += 2
            default:
                guard isFieldValueByte(byte) else { throw HTTPParserError.invalidChunkSize }
                index += 1
            }
        }
        throw HTTPParserError.invalidChunkSize
    }

    /// `HTTP-version = HTTP-name "/" DIGIT "." DIGIT` (RFC 9112 §2.3): the major and minor
    /// version numbers.
    static func version(_ bytes: UnsafeRawBufferPointer) throws -> (major: Int, minor: Int) {
        guard bytes.count == 8 else { throw HTTPParserError.invalidVersion }
        // One comparison of the eight bytes as a word (little-endian) for the usual two, not a
        // byte-wise walk through `Sequence`, which took 0.6 % of a proxied request.
        let word = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        switch word {
        case 0x312e_312f_5054_5448: return (1, 1)  // "HTTP/1.1"
        case 0x302e_312f_5054_5448: return (1, 0)  // "HTTP/1.0"
        default:
            let major = bytes[5] &- UInt8(ascii: "0")
            let minor = bytes[7] &- UInt8(ascii: "0")
            guard word & 0x00ff_00ff_ffff_ffff == 0x002e_002f_5054_5448, major <= 9, minor <= 9 else {
                throw HTTPParserError.invalidVersion
            }
            return (Int(major), Int(minor))
        }
    }

    /// Up to eight bytes as one little-endian word, to compare with a known token in one step.
    @inline(__always)
    static func word(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var word: UInt64 = 0
        for index in 0..<min(bytes.count, 8) { word |= UInt64(bytes[index]) << (8 * UInt64(index)) }
        return word
    }

    /// Without leading and trailing spaces and tabs.
    static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// `keep-alive`, `proxy-connection`, `te`, `trailer` or `upgrade`: the hop-by-hop fields of
    /// ``HopByHop/fields`` other than `Connection` and `Transfer-Encoding`, which are read as
    /// well as removed. Compared as bytes, without lowercasing a copy.
    static func isOtherHopByHop(_ name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 2: equalsLowercase(name, "te")
        case 7: equalsLowercase(name, "trailer") || equalsLowercase(name, "upgrade")
        case 10: equalsLowercase(name, "keep-alive")
        case 16: equalsLowercase(name, "proxy-connection")
        default: false
        }
    }

    /// ASCII case-insensitive equality with a lowercase literal of letters and `-`, for bytes
    /// already checked to be a token or a field value (no control bytes, which could fold onto
    /// `-`).
    static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] && bytes[index] != expected[index] {
                return false
            }
            return true
        }
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    /// tchar (RFC 9110 §5.6.2): letters, digits and ``!#$%&'*+-.^_`|~``, looked up in a
    /// bitmap of the 128 ASCII bytes (bytes 0–63, then 64–127).
    @inline(__always)
    static func isTokenByte(_ byte: UInt8) -> Bool {
        byte < 64
            ? (0x03ff_6cfa_0000_0000 as UInt64) >> UInt64(byte) & 1 != 0
            : byte < 128 && (0x57ff_ffff_c7ff_fffe as UInt64) >> UInt64(byte &- 64) & 1 != 0
    }

    /// Whether every byte may stand in a field value (``isFieldValueByte(_:)``), read eight at a
    /// time while none is a control byte or DEL, then byte by byte from the word that has one
    /// (a tab is allowed) and for the tail. Values are most of a head's bytes.
    static func isFieldValue(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            // Some byte's high bit is set in `control` when a byte is below 0x20 (the usual test
            // for a byte below a bound, which never misses one), or in the other when one is DEL.
            let control = (word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080
            if control | bytesEqual(word, to: 0x7F) != 0 { break }
            index += 8
        }
        while index < bytes.count {
            guard isFieldValueByte(bytes[index]) else { return false }
            index += 1
        }
        return true
    }

    /// field-vchar, SP, HTAB and obs-text: every byte but the other control characters.
    static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\t") || (byte >= 0x20 && byte != 0x7F)
    }
}
