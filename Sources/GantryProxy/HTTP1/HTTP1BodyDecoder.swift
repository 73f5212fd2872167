import NIOCore
import NIOHTTP1

/// Reads one HTTP/1.1 message body (RFC 9112 §6, §7.1) framed by a length, by chunked coding
/// or by the connection's close, handing out its bytes as slices of the read buffers, without
/// copying. Shared by ``HTTPRequestParser`` and ``HTTPResponseParser``.
struct HTTP1BodyDecoder {
    enum Framing {
        case length(Int)
        case chunked
        /// A response without framing: the body ends when the connection does.
        case untilClose
    }

    enum Event {
        case body(ByteBuffer)
        /// The body is complete, with the trailer section of a chunked body.
        case end(HTTPHeaders?)
    }

    private enum State {
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF that ends a chunk's data.
        case chunkEnd
        case trailers
        case untilClose
        case complete(HTTPHeaders?)
    }

    private var state: State
    private var trailerScan = HTTP1Syntax.SectionScanner()
    private let maxTrailerSize: Int
    private let maxTrailerCount: Int

    init(_ framing: Framing, maxTrailerSize: Int, maxTrailerCount: Int) {
        switch framing {
        case .length(let length): state = length == 0 ? .complete(nil) : .fixed(remaining: length)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
        self.maxTrailerSize = maxTrailerSize
        self.maxTrailerCount = maxTrailerCount
    }

    /// The next event from the bytes in `buffer`, or nil when more bytes are needed; the bytes
    /// left in `buffer` then must be offered again, ahead of the next read's.
    mutating func next(_ buffer: inout ByteBuffer) throws -> Event? {
        while true {
            switch state {
            case .complete(let trailers):
                return .end(trailers)
            case .fixed(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                let left = remaining - slice.readableBytes
                state = left == 0 ? .complete(nil) : .fixed(remaining: left)
                return .body(slice)
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes)!)
            case .chunkSize:
                guard let lineEnd = try HTTP1Syntax.find(crlf: buffer, limit: HTTP1Syntax.maxChunkLineSize) else { return nil }
                let size = try HTTP1Syntax.chunkSize(buffer.readSlice(length: lineEnd)!)
                buffer.moveReaderIndex(forwardBy: 2)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let slice = buffer.readSlice(length: min(remaining, buffer.readableBytes))!
                let left = remaining - slice.readableBytes
                state = left == 0 ? .chunkEnd : .chunkData(remaining: left)
                return .body(slice)
            case .chunkEnd:
                guard buffer.readableBytes >= 2 else { return nil }
                guard buffer.readInteger(as: UInt16.self) == HTTP1Syntax.crlf else { throw HTTPParserError.invalidChunkSize }
                state = .chunkSize
            case .trailers:
                if HTTP1Syntax.startsWithCRLF(buffer) {
                    buffer.moveReaderIndex(forwardBy: 2)
                    state = .complete(nil)
                    continue
                }
                guard let end = try trailerScan.end(in: buffer, limit: maxTrailerSize) else { return nil }
                state = .complete(try HTTP1Syntax.trailerFields(buffer.readSlice(length: end)!, maxCount: maxTrailerCount))
            }
        }
    }

    /// Whether the connection's close ends this body (a response without framing).
    var endsAtClose: Bool {
        if case .untilClose = state { return true }
        return false
    }
}

extension HTTP1Syntax {
    /// Finds the blank line that ends a head or trailer section as its bytes trickle in: the
    /// search resumes where the last one stopped instead of rescanning from the start.
    struct SectionScanner {
        private var scanned = 0

        /// The section's length up to and including its blank line, or nil until it has come.
        /// Throws `headerOverflow` once the section is longer than `limit`.
        mutating func end(in buffer: ByteBuffer, limit: Int) throws -> Int? {
            guard let end = try HTTP1Syntax.find(crlfcrlf: buffer, from: max(0, scanned - 3)) else {
                if buffer.readableBytes > limit { throw HTTPParserError.headerOverflow }
                scanned = buffer.readableBytes
                return nil
            }
            scanned = 0
            if end > limit { throw HTTPParserError.headerOverflow }
            return end
        }
    }

    /// Bytes of a head, chunk line or trailer section that has not fully arrived, kept until
    /// the next read.
    struct Leftover {
        private var bytes: ByteBuffer?

        var isEmpty: Bool { bytes == nil }

        /// `incoming`, after what was kept from the reads before.
        mutating func prepended(to incoming: consuming ByteBuffer) -> ByteBuffer {
            guard var earlier = bytes.take() else { return incoming }
            earlier.writeImmutableBuffer(incoming)
            return earlier
        }

        /// Keeps what is left unread in `rest`.
        mutating func keep(_ rest: ByteBuffer) {
            bytes = rest.readableBytes > 0 ? rest : nil
        }
    }
}
