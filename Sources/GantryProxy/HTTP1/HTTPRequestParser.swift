import NIOCore
import NIOHTTP1

/// Reads a client's HTTP/1.1 requests (RFC 9112) from the bytes of its connection: each head,
/// its body as slices of the read buffers and its end (with any trailers), one request after
/// another (pipelining).
///
/// Written here rather than using NIO's `HTTPRequestDecoder` for what that decoder costs on the
/// proxy's hot path: llhttp's callbacks per token, a `ByteToMessageHandler` and a pipeline hop
/// (benchmarks/RESULTS.md). It faces untrusted clients, so it is strict: the request line must
/// be `method SP request-target SP HTTP/1.x` with an uppercase method and a target of visible
/// ASCII; field lines follow ``HTTP1Syntax``; a request with both `Content-Length` and
/// `Transfer-Encoding`, with more than one length, or with a transfer coding that does not end in
/// chunked (RFC 9112 §6.3) is an `HTTPParserError`, as is a head over the configured size or
/// field count (`headerOverflow`, answered 431). After an error the connection's bytes mean
/// nothing; the caller answers and closes.
struct HTTPRequestParser {
    enum Part {
        /// `keepAlive` is false when the client asked to close after this request, or (HTTP/1.0)
        /// did not ask to keep the connection, or sent an HTTP/1.0 `Transfer-Encoding`.
        case head(ClientRequestHead, keepAlive: Bool)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    let maxHeadSize: Int
    /// The largest read buffer a request's field lines keep alive rather than copy.
    static let largestKeptBuffer = 8192
    let maxHeaderCount: Int
    /// The body being read; nil while reading a head.
    private var body: HTTP1BodyDecoder?
    private var leftover = HTTP1Syntax.Leftover()
    private var headScan = HTTP1Syntax.SectionScanner()

    /// Part of a request head has come, not all of it.
    var isReadingHead: Bool { body == nil && !leftover.isEmpty && !holdsAfterUpgrade }
    /// Every request parsed has ended, and no byte after the last one is held.
    var isBetweenMessages: Bool { body == nil && leftover.isEmpty && !holdsAfterUpgrade }
    /// The last request asked to switch protocols (`Upgrade`): what follows it is held as it
    /// came, unparsed, until the answer says whether it is a request or the new protocol's.
    private(set) var holdsAfterUpgrade = false

    init(maxHeadSize: Int, maxHeaderCount: Int) {
        self.maxHeadSize = maxHeadSize
        self.maxHeaderCount = maxHeaderCount
    }

    /// Parses what `incoming` holds, calling `emit` with each part in order. `incoming` is
    /// consumed, so that the read's buffer is moved into the parse rather than copied.
    mutating func parse(_ incoming: consuming ByteBuffer, emit: (Part) -> Void) throws {
        var buffer = leftover.prepended(to: incoming)
        if holdsAfterUpgrade { return leftover.keep(buffer) }
        while true {
            if body != nil {
                guard let event = try body!.next(&buffer) else { return leftover.keep(buffer) }
                if case .end = event { body = nil }
                emit(event.part)
                continue
            }
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            while HTTP1Syntax.startsWithCRLF(buffer) {
                buffer.moveReaderIndex(forwardBy: 2)
            }
            guard buffer.readableBytes > 0 else { return }
            guard let end = try headScan.end(in: buffer, limit: maxHeadSize) else {
                return leftover.keep(buffer)
            }
            let (head, keepAlive, framing) = try parseHead(buffer.readSlice(length: end)!)
            let asksToSwitch = head.facts.requestedUpgrade != nil
            emit(.head(consume head, keepAlive: keepAlive))
            switch framing {
            case .length(0), .untilClose:
                emit(.end(nil))
                if asksToSwitch {
                    holdsAfterUpgrade = true
                    return leftover.keep(buffer)
                }
            case .length, .chunked:
                body = HTTP1BodyDecoder(framing, maxTrailerSize: maxHeadSize, maxTrailerCount: maxHeaderCount)
            }
        }
    }

    /// The protocol switched: the bytes held since the request are the new protocol's, and
    /// this parser reads nothing more.
    mutating func takeHeldBytes() -> ByteBuffer {
        leftover.prepended(to: ByteBuffer())
    }

    /// The upstream did not switch: the held bytes are read as requests again, at the next
    /// ``parse(_:emit:)``.
    mutating func stopHolding() {
        holdsAfterUpgrade = false
    }

    // MARK: Heads

    /// One pass over a head (its bytes end with the blank line): its fields are checked and
    /// learnt from as bytes, and kept as the slice of `head` that holds their lines.
    /// `.untilClose` here means no body: a request without framing has none (RFC 9112 §6.3
    /// rule 7).
    private func parseHead(_ head: ByteBuffer) throws -> (ClientRequestHead, keepAlive: Bool, framing: HTTP1BodyDecoder.Framing) {
        // The facts are learnt in place: returned from the closure, each was copied out and the
        // original destroyed, a retain and a release of every string they hold.
        var framingFacts = HTTP1Syntax.FieldFacts()
        var facts = HeaderFacts()
        let (method, target, minor, fieldsStart) = try head.withUnsafeReadableBytes { bytes in
            var lines = HTTP1Syntax.Lines(bytes: bytes)
            let (method, target, minor) = try Self.requestLine(try lines.next())
            let fieldsStart = lines.index
            try HTTP1Syntax.scanFields(&lines, maxCount: maxHeaderCount, facts: &framingFacts) { name, value, _ in
                facts.learn(name: name, value: value)
            }
            return (method, target, minor, fieldsStart)
        }
        let framing: HTTP1BodyDecoder.Framing
        if let chunked = try framingFacts.chunked() {
            if framingFacts.contentLength != nil { throw HTTPParserError.unexpectedContentLength }
            guard chunked else { throw HTTPParserError.invalidHeaderToken }
            framing = .chunked
        } else {
            framing = framingFacts.contentLength.map { .length($0) } ?? .untilClose
        }
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing;
        // the connection closes after it.
        let keepAlive = framingFacts.keepsAlive(minorVersion: minor) && (minor >= 1 || framingFacts.transferEncodings.isEmpty)
        // The lines after the request line, without the blank line that ends the head. A slice
        // keeps the whole read buffer alive while the request lasts: a usual one (a few KiB)
        // is kept as it is, a larger one (grown by a big body before) gives way to a copy.
        var lines = head.getSlice(at: head.readerIndex + fieldsStart, length: head.readableBytes - fieldsStart - 2)!
        if lines.storageCapacity > Self.largestKeptBuffer { lines = ByteBuffer(buffer: lines) }
        let request = ClientRequestHead(method: method, uri: target, version: HTTPVersion(major: 1, minor: minor), facts: consume facts, lines: lines)
        return (request, keepAlive, framing)
    }

    /// `method SP request-target SP HTTP-version`, single spaces.
    private static func requestLine(_ line: UnsafeRawBufferPointer) throws -> (HTTPMethod, String, Int) {
        guard let methodEnd = line.firstIndex(of: UInt8(ascii: " ")), methodEnd > 0 else { throw HTTPParserError.invalidMethod }
        let method = UnsafeRawBufferPointer(rebasing: line[..<methodEnd])
        guard method.allSatisfy(isMethodByte) else { throw HTTPParserError.invalidMethod }
        let rest = UnsafeRawBufferPointer(rebasing: line[(methodEnd + 1)...])
        guard let targetEnd = rest.firstIndex(of: UInt8(ascii: " ")), targetEnd > 0 else { throw HTTPParserError.invalidURL }
        let target = UnsafeRawBufferPointer(rebasing: rest[..<targetEnd])
        guard target.allSatisfy(isTargetByte) else { throw HTTPParserError.invalidURL }
        // RFC 9110 §2.5, RFC 9112 §2.3: HTTP/1.2 and later minors are answered as HTTP/1.1;
        // another major version is not HTTP/1 at all.
        let (major, minor) = try HTTP1Syntax.version(UnsafeRawBufferPointer(rebasing: rest[(targetEnd + 1)...]))
        guard major == 1 else { throw UnsupportedHTTPVersion(major: major, minor: minor) }
        return (Self.method(method), String(decoding: target, as: UTF8.self), min(minor, 1))
    }

    /// The common methods without building a string.
    /// The method's bytes are already checked (``isMethodByte(_:)``, so no zero byte): a
    /// method of up to eight bytes is known by its word alone.
    private static func method(_ bytes: UnsafeRawBufferPointer) -> HTTPMethod {
        guard bytes.count <= 8 else { return HTTPMethod(rawValue: String(decoding: bytes, as: UTF8.self)) }
        switch HTTP1Syntax.word(bytes) {
        case 0x54_4547: return .GET
        case 0x54_5550: return .PUT
        case 0x5453_4f50: return .POST
        case 0x4441_4548: return .HEAD
        case 0x48_4354_4150: return .PATCH
        case 0x4554_454c_4544: return .DELETE
        case 0x53_4e4f_4954_504f: return .OPTIONS
        default: return HTTPMethod(rawValue: String(decoding: bytes, as: UTF8.self))
        }
    }

    /// Methods as nginx accepts them: uppercase letters, `_` and `-`. RFC 9110 allows any
    /// token, but methods are case-sensitive, and `post` would pass a route that matches
    /// `POST` only, to an upstream that may not tell them apart.
    private static func isMethodByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    /// A request-target byte: visible ASCII (RFC 3986 characters, percent-encoded beyond
    /// them). Raw bytes above 0x7F are refused: as a `String` they would be forwarded changed.
    private static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte < 0x7F
    }
}

/// A request line whose version's major number is not 1: answered 505 (RFC 9110 §15.6.6).
struct UnsupportedHTTPVersion: Error, CustomStringConvertible {
    let major: Int
    let minor: Int
    var description: String { "HTTP/\(major).\(minor)" }
}

extension HTTP1BodyDecoder.Event {
    fileprivate var part: HTTPRequestParser.Part {
        switch self {
        case .body(let slice): .body(slice)
        case .end(let trailers): .end(trailers)
        }
    }
}
