import GantryCore
import NIOCore
import NIOHTTP1

/// Reads an upstream's HTTP/1.1 responses (RFC 9112) from the bytes of its connection and
/// hands on the parts NIO's client decoder would: the head, body slices and the end (with any
/// trailers), and whether the connection stays open.
///
/// Written here rather than using NIO's `HTTPResponseDecoder` for what that decoder costs per
/// response on the proxy's hot path: llhttp's per-token callbacks, a `ByteToMessageHandler`,
/// an extra pipeline hop and a `Connection` scan for `isKeepAlive` came to about 7 % of
/// gantry's CPU samples per proxied request; this parser takes about 3 % (benchmarks/RESULTS.md).
/// It makes one pass over the head, learning framing and keep-alive from the bytes, hands out
/// bodies as slices of the read buffer without copying, and is at least as strict: a malformed
/// status line, field line, `Content-Length` or chunk is an `HTTPParserError`, and so is a
/// repeated or listed `Content-Length` or one beside `Transfer-Encoding` (RFC 9112 §6.3: signs
/// of response splitting). Requests from clients still go through NIO's decoder.
struct HTTPResponseParser {
    private enum State {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF that ends a chunk's data.
        case chunkEnd
        case trailers
        /// No framing: the body ends when the upstream closes the connection.
        case untilClose
    }

    /// What ``parse(_:method:emit:)`` hands on.
    enum Part {
        /// `keepAlive` is false when the upstream will close the connection after this response.
        case head(HTTPResponseHead, keepAlive: Bool)
        case body(ByteBuffer)
        /// `followedByBytes`: more bytes came after the response, which answer no request; the
        /// connection must not be used again.
        case end(HTTPHeaders?, followedByBytes: Bool)
    }

    private var state = State.head
    /// Bytes of a head, chunk line or trailer section that has not fully arrived.
    private var partial: ByteBuffer?
    /// How many bytes of `partial` were searched for a head's end without finding it.
    private var scanned = 0

    /// Envoy's defaults for upstream response heads: 60 KiB and 100 fields.
    static let maxHeadSize = 60 * 1024
    static let maxHeaderCount = 100
    /// A chunk-size line with its extensions.
    static let maxChunkLineSize = 4096

    /// Parses what `incoming` holds, calling `emit` with each part in order. `emit` returns
    /// false when nobody wants the rest of the bytes (the exchange has let go of the
    /// connection); parsing stops there. It stops too at the end of a response: gantry sends
    /// one request at a time, so bytes after it are not an answer to anything, and `.end` says
    /// whether there were any. `method` is the request's: a response to HEAD has no body
    /// whatever its headers say.
    mutating func parse(_ incoming: ByteBuffer, method: HTTPMethod, emit: (Part) -> Bool) throws {
        var buffer = incoming
        if var earlier = partial {
            partial = nil
            earlier.writeImmutableBuffer(incoming)
            buffer = earlier
        }
        while buffer.readableBytes > 0 {
            switch state {
            case .head:
                guard let end = try findBlankLine(in: &buffer) else { return }
                let head = try Self.parseHead(buffer.readSlice(length: end)!)
                if head.informational { continue }  // 100 Continue, 103 Early Hints: not passed on
                guard emit(.head(head.head, keepAlive: head.keepAlive)) else { return }
                if method == .HEAD || head.head.status == .noContent || head.head.status == .notModified {
                    return finish(nil, buffer, emit)
                }
                switch head.framing {
                case .contentLength(0):
                    return finish(nil, buffer, emit)
                case .contentLength(let length):
                    state = .fixed(remaining: length)
                case .chunked:
                    state = .chunkSize
                case .untilClose:
                    state = .untilClose
                }
            case .fixed(let remaining):
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                let left = remaining - slice.readableBytes
                state = .fixed(remaining: left)
                guard emit(.body(slice)) else { return }
                if left == 0 { return finish(nil, buffer, emit) }
            case .chunkSize:
                guard let lineEnd = try Self.find(crlf: buffer, limit: Self.maxChunkLineSize) else {
                    partial = buffer
                    return
                }
                let size = try Self.chunkSize(buffer.readSlice(length: lineEnd)!)
                buffer.moveReaderIndex(forwardBy: 2)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                let left = remaining - slice.readableBytes
                state = left == 0 ? .chunkEnd : .chunkData(remaining: left)
                guard emit(.body(slice)) else { return }
            case .chunkEnd:
                guard buffer.readableBytes >= 2 else {
                    partial = buffer
                    return
                }
                guard buffer.readInteger(as: UInt16.self) == Self.crlf else { throw HTTPParserError.invalidChunkSize }
                state = .chunkSize
            case .trailers:
                if buffer.readableBytesView.starts(with: [UInt8(ascii: "\r"), UInt8(ascii: "\n")]) {
                    buffer.moveReaderIndex(forwardBy: 2)
                    return finish(nil, buffer, emit)
                }
                guard let end = try findBlankLine(in: &buffer) else { return }
                let trailers = try Self.trailerFields(buffer.readSlice(length: end)!)
                return finish(HTTPHeaders(trailers), buffer, emit)
            case .untilClose:
                let slice = buffer.readSlice(length: buffer.readableBytes)!
                guard emit(.body(slice)) else { return }
            }
        }
    }

    /// Ends the response; what is left in `buffer` is dropped.
    private mutating func finish(_ trailers: HTTPHeaders?, _ buffer: ByteBuffer, _ emit: (Part) -> Bool) {
        state = .head
        _ = emit(.end(trailers, followedByBytes: buffer.readableBytes > 0))
    }

    /// The length of the head or trailer section at the start of `buffer` (up to and including
    /// its blank line), or nil after keeping the bytes for the next read. The search resumes
    /// where the last one stopped, so a head that trickles in is not rescanned from its start.
    private mutating func findBlankLine(in buffer: inout ByteBuffer) throws -> Int? {
        guard let end = Self.find(crlfcrlf: buffer, from: max(0, scanned - 3)) else {
            if buffer.readableBytes > Self.maxHeadSize { throw HTTPParserError.headerOverflow }
            scanned = buffer.readableBytes
            partial = buffer
            return nil
        }
        scanned = 0
        if end > Self.maxHeadSize { throw HTTPParserError.headerOverflow }
        return end
    }

    /// The connection closed. Returns true when that ended a response whose body runs until
    /// the close; a response cut short otherwise is the caller's to report.
    mutating func endOfInput() -> Bool {
        guard case .untilClose = state else { return false }
        state = .head
        return true
    }

    // MARK: Heads

    private enum BodyFraming {
        case contentLength(Int)
        case chunked
        case untilClose
    }

    private struct ParsedHead {
        var head: HTTPResponseHead
        var framing: BodyFraming
        /// The upstream keeps the connection open after this response (RFC 9112 §9.3).
        var keepAlive: Bool
        var informational: Bool
    }

    private static let crlf = UInt16(0x0D0A)

    /// The offset just past the blank line that ends a head (the bytes up to it include both
    /// CRLFs), or nil if it has not arrived.
    private static func find(crlfcrlf buffer: ByteBuffer, from start: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            var index = start + 3
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "\n"), bytes[index - 1] == UInt8(ascii: "\r"), bytes[index - 2] == UInt8(ascii: "\n"),
                    bytes[index - 3] == UInt8(ascii: "\r")
                {
                    return index + 1
                }
                index += 1
            }
            return nil
        }
    }

    /// The offset of the CRLF ending the first line (the CRLF not included), or nil. Throws if
    /// no line end comes within `limit` bytes.
    private static func find(crlf buffer: ByteBuffer, limit: Int) throws -> Int? {
        let found: Int? = buffer.withUnsafeReadableBytes { bytes in
            guard let lf = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            return lf
        }
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

    /// One pass over a head (its bytes end with the blank line): the status line, then each
    /// field line, learning the framing and keep-alive from the bytes as they go by.
    private static func parseHead(_ head: ByteBuffer) throws -> ParsedHead {
        try head.withUnsafeReadableBytes { bytes in
            var lines = Lines(bytes: bytes)
            let (version, status) = try statusLine(UnsafeRawBufferPointer(rebasing: bytes[try lines.next()]))
            let code = Int(status.code)
            if code == 101 { throw HTTPParserError.invalidStatus }  // gantry never asks to switch protocols
            var facts = FieldFacts()
            if code < 200 {
                _ = try fields(&lines, facts: &facts)
                return ParsedHead(head: HTTPResponseHead(version: version, status: status), framing: .untilClose, keepAlive: true, informational: true)
            }
            let headers = HTTPHeaders(try fields(&lines, facts: &facts))
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 response means its framing
            // cannot be trusted; the connection closes after it.
            let keepAlive = !facts.close && (version.minor >= 1 ? true : facts.keepAlive && facts.transferEncodings.isEmpty)
            return ParsedHead(
                head: HTTPResponseHead(version: version, status: status, headers: headers), framing: try facts.framing(), keepAlive: keepAlive,
                informational: false)
        }
    }

    /// What the fields say about framing and the connection.
    private struct FieldFacts {
        var contentLength: Int?
        var transferEncodings: [String] = []
        var close = false
        var keepAlive = false

        /// RFC 9112 §6.3 for a response that may have a body.
        func framing() throws -> BodyFraming {
            guard !transferEncodings.isEmpty else { return contentLength.map { .contentLength($0) } ?? .untilClose }
            if contentLength != nil { throw HTTPParserError.unexpectedContentLength }
            let codings = HTTPList.lowercasedTokens(in: transferEncodings)
            let chunkedCount = codings.lazy.filter { $0 == "chunked" }.count
            if chunkedCount == 0 { return .untilClose }  // RFC 9112 §6.3 rule 4: read until close
            guard chunkedCount == 1, codings.last == "chunked" else { throw HTTPParserError.invalidHeaderToken }
            return .chunked
        }

        mutating func learn(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, text: String) throws {
            switch name.count {
            case 14 where equalsLowercase(name, "content-length"):
                // One field, one decimal number. RFC 9110 §8.6 would allow merging repeated or
                // listed equal values, but they would reach the client as sent; nginx refuses
                // them from upstreams too.
                guard contentLength == nil, !value.isEmpty, value.count <= 18 else { throw HTTPParserError.invalidContentLength }
                var length = 0
                for digit in value {
                    guard digit >= 0x30, digit <= 0x39 else { throw HTTPParserError.invalidContentLength }
                    length = length * 10 + Int(digit - 0x30)
                }
                contentLength = length
            case 17 where equalsLowercase(name, "transfer-encoding"):
                transferEncodings.append(text)
            case 10 where equalsLowercase(name, "connection"):
                for item in value.split(separator: UInt8(ascii: ",")) {
                    let token = trimmed(UnsafeRawBufferPointer(rebasing: item))
                    if token.count == 5, equalsLowercase(token, "close") { close = true }
                    if token.count == 10, equalsLowercase(token, "keep-alive") { keepAlive = true }
                }
            default:
                break
            }
        }
    }

    /// The lines of a head, each without its CRLF. A bare LF is an error; a bare CR is caught
    /// by the checks on the line's bytes.
    private struct Lines {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        mutating func next() throws -> Range<Int> {
            guard let lf = bytes[index...].firstIndex(of: UInt8(ascii: "\n")), lf > index, bytes[lf - 1] == UInt8(ascii: "\r") else {
                throw HTTPParserError.lfExpected
            }
            defer { index = lf + 1 }
            return index..<(lf - 1)
        }
    }

    /// Field lines up to and including the blank line that ends the section: `field-name ":"
    /// OWS field-value OWS`. A line starting with whitespace (obs-fold) is an error, as RFC
    /// 9112 §5.2 allows a proxy to treat it.
    private static func fields(_ lines: inout Lines, facts: inout FieldFacts) throws -> [(String, String)] {
        var fields: [(String, String)] = []
        fields.reserveCapacity(8)
        while true {
            let line = UnsafeRawBufferPointer(rebasing: lines.bytes[try lines.next()])
            if line.isEmpty { return fields }
            guard fields.count < maxHeaderCount else { throw HTTPParserError.headerOverflow }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { throw HTTPParserError.invalidHeaderToken }
            let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
            guard name.allSatisfy(isTokenByte) else { throw HTTPParserError.invalidHeaderToken }
            let value = trimmed(UnsafeRawBufferPointer(rebasing: line[(colon + 1)...]))
            guard value.allSatisfy(isFieldValueByte) else { throw HTTPParserError.invalidHeaderToken }
            let text = String(decoding: value, as: UTF8.self)
            try facts.learn(name: name, value: value, text: text)
            fields.append((String(decoding: name, as: UTF8.self), text))
        }
    }

    /// A trailer section, as fields.
    private static func trailerFields(_ section: ByteBuffer) throws -> [(String, String)] {
        try section.withUnsafeReadableBytes { bytes in
            var lines = Lines(bytes: bytes)
            var facts = FieldFacts()
            return try fields(&lines, facts: &facts)
        }
    }

    /// `HTTP/1.x SP status-code [SP reason-phrase]`.
    private static func statusLine(_ bytes: UnsafeRawBufferPointer) throws -> (HTTPVersion, HTTPResponseStatus) {
        guard bytes.count >= 12, bytes.starts(with: "HTTP/1.".utf8), bytes[8] == UInt8(ascii: " ") else {
            throw HTTPParserError.invalidVersion
        }
        let minor: Int
        switch bytes[7] {
        case UInt8(ascii: "0"): minor = 0
        case UInt8(ascii: "1"): minor = 1
        default: throw HTTPParserError.invalidVersion
        }
        var code = 0
        for index in 9..<12 {
            let digit = bytes[index]
            guard digit >= 0x30, digit <= 0x39 else { throw HTTPParserError.invalidStatus }
            code = code * 10 + Int(digit - 0x30)
        }
        guard code >= 100 else { throw HTTPParserError.invalidStatus }
        var reason = ""
        if bytes.count > 12 {
            guard bytes[12] == UInt8(ascii: " ") else { throw HTTPParserError.invalidStatus }
            let phrase = UnsafeRawBufferPointer(rebasing: bytes[13...])
            guard phrase.allSatisfy(isFieldValueByte) else { throw HTTPParserError.invalidStatus }
            reason = String(decoding: phrase, as: UTF8.self)
        }
        return (HTTPVersion(major: 1, minor: minor), HTTPResponseStatus(statusCode: code, reasonPhrase: reason))
    }

    /// Without leading and trailing spaces and tabs.
    private static func trimmed(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        var start = 0
        var end = bytes.count
        while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
        while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// ASCII case-insensitive equality with a lowercase literal of letters and `-`, for bytes
    /// already checked to be a token or a field value (no control bytes, which could fold onto
    /// `-`).
    private static func equalsLowercase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in
            for index in 0..<bytes.count where bytes[index] | 0x20 != expected[index] && bytes[index] != expected[index] {
                return false
            }
            return true
        }
    }

    /// `chunk-size [chunk-ext]`: the extensions are checked for stray control bytes and dropped.
    private static func chunkSize(_ line: ByteBuffer) throws -> Int {
        try line.withUnsafeReadableBytes { bytes in
            var size = 0
            var index = 0
            while index < bytes.count, let digit = hexValue(bytes[index]) {
                guard size <= (Int.max >> 4) else { throw HTTPParserError.invalidChunkSize }
                size = size << 4 | digit
                index += 1
            }
            guard index > 0 else { throw HTTPParserError.invalidChunkSize }
            // `*( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`: after optional
            // whitespace, only an extension may follow.
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: "\t") { index += 1 }
            if index < bytes.count {
                let rest = UnsafeRawBufferPointer(rebasing: bytes[index...])
                guard rest[0] == UInt8(ascii: ";"), rest.allSatisfy(isFieldValueByte) else { throw HTTPParserError.invalidChunkSize }
            }
            return size
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

    /// tchar (RFC 9110 §5.6.2).
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// field-vchar, SP, HTAB and obs-text: every byte but the other control characters.
    private static func isFieldValueByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "\t") || (byte >= 0x20 && byte != 0x7F)
    }
}
