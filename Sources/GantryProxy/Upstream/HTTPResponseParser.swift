import GantryCore
import NIOCore
import NIOHTTP1

/// Reads an upstream's HTTP/1.1 responses (RFC 9112) from the bytes of its connection and
/// hands on the head (as an ``UpstreamResponseHead``: its field lines kept as bytes), body
/// slices and the end (with any trailers), and whether the connection stays open.
///
/// Written here rather than using NIO's `HTTPResponseDecoder` for what that decoder costs per
/// response on the proxy's hot path: llhttp's per-token callbacks, a `ByteToMessageHandler`,
/// an extra pipeline hop and a `Connection` scan for `isKeepAlive` came to about 7 % of
/// gantry's CPU samples per proxied request; this parser takes about 3 % (benchmarks/RESULTS.md).
/// It makes one pass over the head, learning framing and keep-alive from the bytes, hands out
/// bodies as slices of the read buffer without copying, and is at least as strict: a malformed
/// status line, field line, `Content-Length` or chunk is an `HTTPParserError`, and so is a
/// repeated or listed `Content-Length` or one beside `Transfer-Encoding` (RFC 9112 §6.3: signs
/// of response splitting). Clients' requests are read by ``HTTPRequestParser``, with the same
/// syntax (``HTTP1Syntax``) and body decoder.
struct HTTPResponseParser {
    /// What ``parse(_:method:requestID:emit:)`` hands on.
    enum Part {
        /// The head as it goes on to the client: without hop-by-hop fields (RFC 9110 §7.6.1,
        /// and those `Connection` names), whose work the proxy redoes for its own connection,
        /// and with the request's `X-Request-ID` (when ``parse(_:method:requestID:emit:)`` is
        /// given one) in place of any the upstream sent.
        /// `keepAlive` is false when the upstream will close the connection after this response.
        case head(UpstreamResponseHead, keepAlive: Bool)
        case body(ByteBuffer)
        /// `followedByBytes`: more bytes came after the response, which answer no request; the
        /// connection must not be used again.
        case end(HTTPHeaders?, followedByBytes: Bool)
        /// After a 101 to a request that asked to switch: the bytes after the head, which are
        /// the new protocol's; the connection is no longer HTTP.
        case switched(ByteBuffer)
    }

    /// The body being read; nil while reading a head.
    private var body: HTTP1BodyDecoder?
    private var leftover = HTTP1Syntax.Leftover()
    private var headScan = HTTP1Syntax.SectionScanner()

    /// Envoy's defaults for upstream response heads: 60 KiB and 100 fields.
    static let maxHeadSize = 60 * 1024
    static let maxHeaderCount = 100

    /// Parses what `incoming` holds, calling `emit` with each part in order. `emit` returns
    /// false when nobody wants the rest of the bytes (the exchange has let go of the
    /// connection); parsing stops there. It stops too at the end of a response: gantry sends
    /// one request at a time, so bytes after it are not an answer to anything, and `.end` says
    /// whether there were any. `method` is the request's: a response to HEAD has no body
    /// whatever its headers say. `requestID`, when given, is added to the head as it is built
    /// (adding it afterwards copied the fields, which the caller does not own alone).
    /// `upgrading`: the request asked to switch protocols, so a 101 is its answer; otherwise a
    /// 101 is a protocol error.
    mutating func parse(
        _ incoming: consuming ByteBuffer, method: HTTPMethod, requestID: RequestIdentifier? = nil, upgrading: Bool = false, emit: (Part) -> Bool
    ) throws {
        var buffer = leftover.prepended(to: incoming)
        while true {
            if body != nil {
                guard let event = try body!.next(&buffer) else { return leftover.keep(buffer) }
                switch event {
                case .body(let slice):
                    guard emit(.body(slice)) else { return }
                case .end(let trailers):
                    return finish(trailers, buffer, emit)
                }
                continue
            }
            guard buffer.readableBytes > 0 else { return }
            guard let end = try headScan.end(in: buffer, limit: Self.maxHeadSize) else {
                return leftover.keep(buffer)
            }
            let (head, framing, keepAlive, informational) = try Self.parseHead(
                buffer.readSlice(length: end)!, requestID: requestID, upgrading: upgrading)
            if informational { continue }  // 100 Continue, 103 Early Hints: not passed on
            let code = head.code
            if code == 101 {
                guard emit(.head(consume head, keepAlive: false)) else { return }
                _ = emit(.switched(buffer))
                return
            }
            // Moved on: a copy of the head retained and released its buffer and request ID.
            guard emit(.head(consume head, keepAlive: keepAlive)) else { return }
            if method == .HEAD || code == 204 || code == 304 {
                return finish(nil, buffer, emit)
            }
            body = HTTP1BodyDecoder(framing, maxTrailerSize: Self.maxHeadSize, maxTrailerCount: Self.maxHeaderCount)
        }
    }

    /// Ends the response; what is left in `buffer` is dropped.
    private mutating func finish(_ trailers: HTTPHeaders?, _ buffer: ByteBuffer, _ emit: (Part) -> Bool) {
        body = nil
        _ = emit(.end(trailers, followedByBytes: buffer.readableBytes > 0))
    }

    /// The connection closed. Returns true when that ended a response whose body runs until
    /// the close; a response cut short otherwise is the caller's to report.
    mutating func endOfInput() -> Bool {
        guard body?.endsAtClose == true else { return false }
        body = nil
        return true
    }

    // MARK: Heads

    /// A tuple rather than a struct, so that its head can be moved on alone.
    /// `keepAlive`: the upstream keeps the connection open after this response (RFC 9112 §9.3).
    private typealias ParsedHead = (
        head: UpstreamResponseHead, framing: HTTP1BodyDecoder.Framing, keepAlive: Bool, informational: Bool
    )

    /// One pass over a head (its bytes end with the blank line): the status line, then each
    /// field line, learning the framing and keep-alive from the bytes as they go by.
    private static func parseHead(_ head: ByteBuffer, requestID: RequestIdentifier?, upgrading: Bool) throws -> ParsedHead {
        try head.withUnsafeReadableBytes { bytes in
            var lines = HTTP1Syntax.Lines(bytes: bytes)
            let (version, status, code) = try statusLine(try lines.next())
            if code == 101, !upgrading { throw HTTPParserError.invalidStatus }  // nobody asked to switch protocols
            var facts = HTTP1Syntax.FieldFacts()
            facts.forwarding = true
            if code < 200, code != 101 {
                try HTTP1Syntax.scanFields(&lines, maxCount: maxHeaderCount, facts: &facts) { _, _, _ in }
                return (
                    head: UpstreamResponseHead(version: version, status: status, code: code, fields: .built([:]), hasContentLength: false),
                    framing: .untilClose, keepAlive: true, informational: true)
            }
            var kept = UpstreamResponseHead.KeptLines(head: head, requestID: requestID)
            var fits = true
            try HTTP1Syntax.scanFields(&lines, maxCount: maxHeaderCount, facts: &facts) { _, _, line in
                if fits { fits = kept.keep(line) }
            }
            let fields: UpstreamResponseHead.Fields
            if fits, facts.nominated.isEmpty {
                fields = .lines(consume kept)
            } else {
                fields = .built(try builtFields(bytes, nominated: facts, requestID: requestID))
            }
            // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 response means its framing
            // cannot be trusted; the connection closes after it.
            let keepAlive = facts.keepsAlive(minorVersion: version.minor) && (version.minor >= 1 || facts.transferEncodings.isEmpty)
            return (
                head: UpstreamResponseHead(
                    version: version, status: status, code: code, fields: fields, hasContentLength: facts.contentLength != nil),
                framing: try framing(facts), keepAlive: keepAlive, informational: false)
        }
    }

    /// The head's forwarded fields built, for the rare head whose kept lines do not fit
    /// ``UpstreamResponseHead/KeptLines``: a second pass, leaving out what `Connection` named.
    private static func builtFields(_ bytes: UnsafeRawBufferPointer, nominated: HTTP1Syntax.FieldFacts, requestID: RequestIdentifier?) throws -> HTTPHeaders {
        var lines = HTTP1Syntax.Lines(bytes: bytes)
        _ = try lines.next()  // the status line
        var facts = HTTP1Syntax.FieldFacts()
        facts.forwarding = true
        var fields = try HTTP1Syntax.fields(&lines, maxCount: maxHeaderCount, facts: &facts)
        if !nominated.nominated.isEmpty { fields.removeAll { nominated.isNominated($0.0) } }
        if let requestID { fields.append(("x-request-id", requestID.description)) }
        return HTTPHeaders(fields)
    }

    /// RFC 9112 §6.3 for a response that may have a body.
    private static func framing(_ facts: HTTP1Syntax.FieldFacts) throws -> HTTP1BodyDecoder.Framing {
        guard let chunked = try facts.chunked() else { return facts.contentLength.map { .length($0) } ?? .untilClose }
        if facts.contentLength != nil { throw HTTPParserError.unexpectedContentLength }
        return chunked ? .chunked : .untilClose  // rule 4: without chunked, read until close
    }

    /// `HTTP/1.x SP status-code [SP reason-phrase]`.
    private static func statusLine(_ bytes: UnsafeRawBufferPointer) throws -> (HTTPVersion, HTTPResponseStatus, code: Int) {
        guard bytes.count >= 12, bytes[8] == UInt8(ascii: " ") else { throw HTTPParserError.invalidVersion }
        // RFC 9110 §2.5: a higher HTTP/1 minor version is read as the highest one known.
        let (major, minorSent) = try HTTP1Syntax.version(UnsafeRawBufferPointer(rebasing: bytes[..<8]))
        guard major == 1 else { throw HTTPParserError.invalidVersion }
        let minor = min(minorSent, 1)
        var code = 0
        for index in 9..<12 {
            let digit = bytes[index]
            guard digit >= 0x30, digit <= 0x39 else { throw HTTPParserError.invalidStatus }
            code = code * 10 + Int(digit - 0x30)
        }
        guard code >= 100 else { throw HTTPParserError.invalidStatus }
        // NIO gives a known code its standard reason phrase whatever the upstream sent, so the
        // phrase is made into a string only for a code NIO does not know.
        var status = HTTPResponseStatus(statusCode: code)
        if bytes.count > 12 {
            guard bytes[12] == UInt8(ascii: " ") else { throw HTTPParserError.invalidStatus }
            let phrase = UnsafeRawBufferPointer(rebasing: bytes[13...])
            guard HTTP1Syntax.isFieldValue(phrase) else { throw HTTPParserError.invalidStatus }
            if case .custom = status { status = HTTPResponseStatus(statusCode: code, reasonPhrase: String(decoding: phrase, as: UTF8.self)) }
        }
        return (HTTPVersion(major: 1, minor: minor), status, code)
    }
}
