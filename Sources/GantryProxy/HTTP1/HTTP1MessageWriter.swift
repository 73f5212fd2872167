import GantryCore
import NIOCore
import NIOHTTP1

/// Turns one side's HTTP/1.1 messages into bytes: a response to a client or a request to an
/// upstream, head, body parts and end, with the body framed by `Content-Length`, chunked
/// coding or the connection's close.
///
/// Written here rather than using NIO's `HTTPResponseEncoder` and `HTTPRequestEncoder` so that
/// a small message leaves in one buffer: the encoders hand the head, each body part and each
/// chunk's size line to the channel as separate writes, which for a small proxied response
/// cost a pipeline hop, a pending-write entry and an iovec each (benchmarks/RESULTS.md). Here
/// bytes gather in one buffer until the caller flushes; a body part larger than
/// ``coalesceLimit`` is handed on as it is, without copying.
struct HTTP1MessageWriter {
    private enum BodyFraming {
        /// `Content-Length`, or (HTTP/1.0, no length) until the connection closes: parts as they are.
        case plain
        case chunked
        /// A response to HEAD, or one whose status has no content: nothing after the head.
        case none
    }

    private var framing = BodyFraming.plain
    /// Bytes written but not yet handed to the channel.
    private var pending: ByteBuffer?
    /// Where a flushed head's buffer waits to be written into again; shared by the writers of
    /// one event loop.
    private let spare: SpareBuffer?

    /// One event loop's spare write buffer. A buffer handed to the channel is written to the
    /// socket during the flush, in the usual case, and then only this holds its storage: the
    /// next head on the loop is written into it instead of two new allocations (the storage
    /// object and its bytes). When the channel still holds the bytes, writing copies them
    /// first (`ByteBuffer` is copy-on-write), so sharing is safe either way.
    final class SpareBuffer {
        var buffer: ByteBuffer?
        /// Larger buffers (a coalesced body) are let go rather than kept.
        static let maxCapacity = 8192
    }

    init(spare: SpareBuffer? = nil) {
        self.spare = spare
    }

    /// Body parts up to this size are copied next to the head; larger ones go out as they are.
    static let coalesceLimit = 4096

    /// A response head. The framing fields are set the way NIO's encoder sets them: a status
    /// without content (1xx, 204, 304) loses `Content-Length` and `Transfer-Encoding`; a length
    /// excludes transfer codings; a body without a length is chunked for HTTP/1.1, and runs
    /// until the close for HTTP/1.0, without `Transfer-Encoding` (an HTTP/1.0 recipient knows
    /// no transfer codings, RFC 9112 §6.1). A response to HEAD keeps its framing fields, which
    /// describe the GET, but has no body. The fields are filtered as they are written, not
    /// copied first.
    mutating func writeHead(_ head: HTTPResponseHead, toHEAD: Bool, allocator: ByteBufferAllocator) {
        let mayHaveBody = head.status.mayHaveResponseBody
        writeResponseHead(
            head.status, version: head.version, hasLength: head.headers.contains(name: "content-length"), toHEAD: toHEAD, allocator: allocator
        ) { buffer in
            Self.writeFields(head.headers, dropping: mayHaveBody ? .transferEncoding : .framing, to: &buffer)
        }
    }

    /// An upstream's response head going on unchanged to an HTTP/1.1 client, its field lines
    /// copied as they came. The framing is set as for a built head: `Transfer-Encoding` was left
    /// out by the parser, and a body without a length is chunked. The caller builds the head
    /// instead when its status has no content but it has a `Content-Length`, which must go.
    mutating func writeHead(_ head: UpstreamResponseHead, lines: UpstreamResponseHead.KeptLines, toHEAD: Bool, allocator: ByteBufferAllocator) {
        assert(head.status.mayHaveResponseBody || !head.hasContentLength, "a head whose length must go is built first")
        writeResponseHead(head.status, version: .http1_1, hasLength: head.hasContentLength, toHEAD: toHEAD, allocator: allocator) {
            lines.write(to: &$0)
        }
    }

    /// The framing both kinds of response head follow, around their fields.
    private mutating func writeResponseHead(
        _ status: HTTPResponseStatus, version: HTTPVersion, hasLength: Bool, toHEAD: Bool, allocator: ByteBufferAllocator,
        fields: (inout ByteBuffer) -> Void
    ) {
        let mayHaveBody = status.mayHaveResponseBody
        let declaresChunked = mayHaveBody && version.minor >= 1 && !hasLength
        framing = !mayHaveBody || toHEAD ? .none : (declaresChunked ? .chunked : .plain)
        var buffer = startBuffer(allocator)
        Self.writeStatusLine(status, version: version, to: &buffer)
        fields(&buffer)
        if declaresChunked { buffer.writeStaticString("transfer-encoding: chunked\r\n") }
        buffer.writeCRLF()
        pending = buffer
    }

    /// A request head, written as gantry framed it: chunked when its `Transfer-Encoding` says
    /// so (the forwarding rules leave only `chunked` there), else as it is.
    mutating func writeHead(_ head: HTTPRequestHead, allocator: ByteBufferAllocator) {
        framing = head.headers.first(name: "transfer-encoding") == "chunked" ? .chunked : .plain
        var buffer = startBuffer(allocator)
        Self.writeRequestLine(head.method, uri: head.uri, to: &buffer)
        Self.write(head.headers, to: &buffer)
        pending = buffer
    }

    /// A request head going upstream. While it is the client's lines, they are copied as they
    /// came (in one run when all of them go on) and gantry's fields follow; once built, it is
    /// written as a built head.
    mutating func writeHead(_ head: UpstreamRequestHead, allocator: ByteBufferAllocator) {
        guard head.builtHead == nil, case .lines(let lines) = head.client.fields else {
            return writeHead(head.built, allocator: allocator)
        }
        framing = head.forwarding.chunked ? .chunked : .plain
        var buffer = startBuffer(allocator)
        Self.writeRequestLine(head.client.method, uri: head.uri, to: &buffer)
        if head.forwarding.keepsEveryField(of: head.client.facts) {
            buffer.writeImmutableBuffer(lines)
        } else {
            ClientRequestHead.forEachField(in: lines) { name, _, line in
                if !head.forwarding.drops(name, facts: head.client.facts) { buffer.writeBytes(line) }
            }
        }
        Self.writeFields(of: head.forwarding, to: &buffer)
        pending = buffer
    }

    /// A `100 Continue` (or another interim response), ahead of the real head.
    mutating func writeInterim(_ status: HTTPResponseStatus, version: HTTPVersion, allocator: ByteBufferAllocator) {
        var buffer = startBuffer(allocator)
        Self.writeStatusLine(status, version: version, to: &buffer)
        buffer.writeCRLF()
        pending = buffer
    }

    /// The connection switched protocols: what is written from now on goes as it is.
    mutating func startTunnel() {
        framing = .plain
    }

    /// A body part. `emit` receives what must be handed to the channel now, in order: a part
    /// too large to copy, and the bytes gathered before it.
    mutating func writeBody(_ part: ByteBuffer, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        let size = part.readableBytes
        guard size > 0 else { return }  // an empty chunk would end a chunked body
        switch framing {
        case .none:
            return
        case .plain:
            append(part, allocator: allocator, emit: emit)
        case .chunked:
            var buffer = take() ?? allocator.buffer(capacity: size <= Self.coalesceLimit ? size + 16 : 16)
            Self.writeHex(size, to: &buffer)
            buffer.writeCRLF()
            pending = buffer
            append(part, allocator: allocator, emit: emit)
            pending!.writeCRLF()
        }
    }

    /// The end of the message, with trailers when it is chunked.
    mutating func writeEnd(_ trailers: HTTPHeaders?, allocator: ByteBufferAllocator) {
        guard case .chunked = framing else { return }
        var buffer = take() ?? allocator.buffer(capacity: 5)
        buffer.writeStaticString("0\r\n")
        if let trailers {
            Self.write(trailers, to: &buffer)
        } else {
            buffer.writeCRLF()
        }
        pending = buffer
    }

    /// A body part for a channel: what cannot wait is written at once, the rest gathers.
    mutating func writeBody(_ part: ByteBuffer, allocator: ByteBufferAllocator, through context: ChannelHandlerContext) {
        writeBody(part, allocator: allocator) { context.write(NIOAny($0), promise: nil) }
    }

    /// Writes what has gathered and flushes the channel, in one pass down the pipeline (a write
    /// and then a flush went down it twice).
    mutating func flush(through context: ChannelHandlerContext) {
        guard let bytes = take() else { return context.flush() }
        context.writeAndFlush(NIOAny(bytes), promise: nil)
        if let spare, bytes.capacity <= SpareBuffer.maxCapacity { spare.buffer = bytes }
    }

    /// The bytes gathered since the last call, to write before a flush.
    mutating func take() -> ByteBuffer? {
        pending.take()  // moved out: a copy and then `nil` retained and released the storage
    }

    // MARK: Bytes

    private mutating func append(_ part: ByteBuffer, allocator: ByteBufferAllocator, emit: (ByteBuffer) -> Void) {
        if part.readableBytes <= Self.coalesceLimit {
            var buffer = take() ?? allocator.buffer(capacity: part.readableBytes + 8)
            buffer.writeImmutableBuffer(part)
            pending = buffer
            return
        }
        if let gathered = take() { emit(gathered) }
        emit(part)
        // A chunk's closing CRLF goes in a fresh buffer.
        if case .chunked = framing { pending = allocator.buffer(capacity: 16) }
    }

    /// Taken rather than copied out of `pending`, here and wherever bytes are added: with a
    /// second reference to its storage, a buffer written to is copied first.
    private mutating func startBuffer(_ allocator: ByteBufferAllocator) -> ByteBuffer {
        if let pending = take() { return pending }
        if var recycled = spare?.buffer {
            spare?.buffer = nil
            recycled.clear()
            return recycled
        }
        // Room for a typical head and a small body after it.
        return allocator.buffer(capacity: 1024)
    }

    /// Framing fields a response head must not carry as they are: its transfer codings are
    /// gantry's to declare, and a status without content has no length either.
    private enum DroppedFields {
        case none
        case transferEncoding
        /// `Content-Length` and `Transfer-Encoding`.
        case framing

        func drops(_ name: String) -> Bool {
            switch name.utf8.count {
            case 17: self != .none && name.isASCII(caseInsensitiveEqualTo: "transfer-encoding")
            case 14: self == .framing && name.isASCII(caseInsensitiveEqualTo: "content-length")
            default: false
            }
        }
    }

    /// `name: value` lines and the blank line that ends the section.
    private static func write(_ headers: HTTPHeaders, to buffer: inout ByteBuffer) {
        writeFields(headers, dropping: .none, to: &buffer)
        buffer.writeCRLF()
    }

    /// `name: value` lines, without the blank line, copied straight into the buffer's free
    /// space: a head is a few dozen short strings, and a `ByteBuffer` write for each cost more
    /// than the copy. The space is taken as it comes (one round for any usual head) rather
    /// than measured first, which was a second pass over the fields.
    /// A field whose name is not a token or whose value holds CR, LF or NUL is left out: such
    /// bytes would end the field, or the head, and let whoever chose them (a token's claim, a
    /// header from an HTTP/2 client) write fields or a second message of their own. The check
    /// reads the bytes just copied, still in cache, rather than walking each string first.
    private static func writeFields(_ headers: HTTPHeaders, dropping dropped: DroppedFields, to buffer: inout ByteBuffer) {
        var next = headers.startIndex
        while next < headers.endIndex {
            let first = headers[next]
            let room = max(512, first.name.utf8.count + first.value.utf8.count + 4)
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { out in
                var cursor = FieldCursor(out: out)
                while next < headers.endIndex {
                    let (name, value) = headers[next]
                    guard cursor.offset + name.utf8.count + value.utf8.count + 4 <= out.count else { break }  // the rest in the next round
                    next = headers.index(after: next)
                    if dropped.drops(name) { continue }
                    cursor.put(name: name, value: value)
                }
                return cursor.offset
            }
        }
    }

    /// gantry's forwarding fields, `traceparent` last, written from the trace's numbers, and the
    /// blank line that ends the head.
    private static func writeFields(of forwarding: ForwardingHeaders, to buffer: inout ByteBuffer) {
        var room = 2 + (forwarding.trace == nil ? 0 : 15 + TraceContext.headerLength)
        forwarding.forEachAdded({ room += $0.utf8.count + $1.utf8.count + 4 }, requestID: { room += $0.fieldLength })
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: room) { out in
            var cursor = FieldCursor(out: out)
            forwarding.forEachAdded({ cursor.put(ownName: $0, value: $1) }, requestID: { cursor.put(requestID: $0) })
            if let trace = forwarding.trace { cursor.put(traceparent: trace) }
            out[cursor.offset] = UInt8(ascii: "\r")
            out[cursor.offset + 1] = UInt8(ascii: "\n")
            return cursor.offset + 2
        }
    }

    /// `method SP request-target SP HTTP/1.1` and its CRLF, in one write.
    private static func writeRequestLine(_ method: HTTPMethod, uri: String, to buffer: inout ByteBuffer) {
        var method = method.rawValue
        var uri = uri
        method.withUTF8 { method in
            uri.withUTF8 { uri in
                _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: method.count + uri.count + 12) { out in
                    var offset = out.copyShort(from: UnsafeRawBufferPointer(method), at: 0)
                    out[offset] = UInt8(ascii: " ")
                    offset = out.copyShort(from: UnsafeRawBufferPointer(uri), at: offset + 1)
                    return out.copyShort(from: " HTTP/1.1\r\n", at: offset)
                }
            }
        }
    }

    /// Where the next field line goes in a buffer's free space. A struct with mutating
    /// methods, not nested functions capturing the offset: those captures cost a dynamic
    /// exclusivity check on every access.
    private struct FieldCursor {
        let out: UnsafeMutableRawBufferPointer
        var offset = 0

        /// Copies `name: value` and its CRLF; takes them back when the name is not a token
        /// or the value holds a control byte (one could end the line).
        mutating func put(name: String, value: String) {
            put(name: name, checked: true, value: value)
        }

        /// The same for one of gantry's own fields (``ForwardingHeaders``), whose names are
        /// literals: only the value is checked.
        mutating func put(ownName name: String, value: String) {
            put(name: name, checked: false, value: value)
        }

        private mutating func put(name: String, checked: Bool, value: String) {
            let start = offset
            let nameValid = copy(name) { !checked || ($0.count > 0 && $0.allSatisfy(HTTP1Syntax.isTokenByte)) }
            out[offset] = UInt8(ascii: ":")
            out[offset + 1] = UInt8(ascii: " ")
            offset += 2
            let valueValid = copy(value, valid: HTTP1Syntax.isFieldValue)
            out[offset] = UInt8(ascii: "\r")
            out[offset + 1] = UInt8(ascii: "\n")
            offset += 2
            if !nameValid || !valueValid { offset = start }
        }

        /// `x-request-id: ` and the ID. A UUID gantry made is spelled straight into the buffer;
        /// any other ID is checked like every other value.
        mutating func put(requestID: RequestIdentifier) {
            guard case .uuid = requestID else { return put(ownName: "x-request-id", value: requestID.description) }
            offset = requestID.writeField(into: out, at: offset)
        }

        /// `traceparent: ` and the trace's value, which is hex and dashes.
        mutating func put(traceparent trace: TraceContext) {
            offset = out.copyShort(from: "traceparent: ", at: offset)
            trace.writeHeader(into: UnsafeMutableRawBufferPointer(rebasing: out[offset...]))
            offset += TraceContext.headerLength
            out[offset] = UInt8(ascii: "\r")
            out[offset + 1] = UInt8(ascii: "\n")
            offset += 2
        }

        /// Copies `text` and checks the copied bytes with `valid`.
        private mutating func copy(_ text: String, valid: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            let target = UnsafeMutableRawBufferPointer(rebasing: out[offset...])
            let count = text.utf8.count
            if text.utf8.withContiguousStorageIfAvailable({ target.copyShort(from: UnsafeRawBufferPointer($0)) }) == nil {
                target.copyBytes(from: text.utf8)
            }
            offset += count
            return valid(UnsafeRawBufferPointer(rebasing: target[..<count]))
        }
    }

    /// `HTTP/1.x 200 OK` and its CRLF, in one write: a `ByteBuffer` write per piece checked
    /// the capacity and uniqueness of the storage eight times.
    private static func writeStatusLine(_ status: HTTPResponseStatus, version: HTTPVersion, to buffer: inout ByteBuffer) {
        let code = min(max(Int(status.code), 100), 999)
        var reason = status.reasonPhrase
        reason.withUTF8 { phrase in
            _ = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: phrase.count + 15) { out in
                _ = out.copyShort(from: "HTTP/1.1 000 ", at: 0)
                if version.minor == 0 { out[7] = UInt8(ascii: "0") }
                out[9] = UInt8(truncatingIfNeeded: 0x30 + code / 100)
                out[10] = UInt8(truncatingIfNeeded: 0x30 + code / 10 % 10)
                out[11] = UInt8(truncatingIfNeeded: 0x30 + code % 10)
                _ = out.copyShort(from: UnsafeRawBufferPointer(phrase), at: 13)
                out[13 + phrase.count] = UInt8(ascii: "\r")
                out[14 + phrase.count] = UInt8(ascii: "\n")
                return phrase.count + 15
            }
        }
    }

    private static func writeHex(_ value: Int, to buffer: inout ByteBuffer) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (Int.bitWidth - value.leadingZeroBitCount - 1) / 4 * 4
        digits.withUTF8Buffer { hex in
            while shift >= 0 {
                buffer.writeInteger(hex[(value >> shift) & 0xF])
                shift -= 4
            }
        }
    }
}

extension RequestIdentifier {
    /// Bytes of `x-request-id: <id>` and its CRLF.
    var fieldLength: Int { 16 + utf8Count }

    /// Writes `x-request-id: <id>` and its CRLF at `offset` of `out`, which has room for
    /// ``fieldLength`` bytes after it, spelling a UUID in place; returns the offset after them.
    /// The ID is gantry's or a client's that ``RequestIdentifier/isSane(_:)`` let through.
    func writeField(into out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var offset = out.copyShort(from: "x-request-id: ", at: offset)
        offset += write(into: UnsafeMutableRawBufferPointer(rebasing: out[offset...]))
        out[offset] = UInt8(ascii: "\r")
        out[offset + 1] = UInt8(ascii: "\n")
        return offset + 2
    }
}

extension ByteBuffer {
    /// A line's end, as one two-byte integer: `writeStaticString` took a copy call and a walk
    /// over the string's bytes for it.
    fileprivate mutating func writeCRLF() {
        writeInteger(HTTP1Syntax.crlf)
    }
}
