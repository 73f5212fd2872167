import GantryCore
import NIOCore
import NIOHTTP1

/// An upstream's response head as it goes on to the client: its status line, and its field
/// lines as the bytes that came, less those the proxy leaves out (hop-by-hop fields, those
/// `Connection` names, the upstream's `X-Request-ID`), and with the request's `X-Request-ID`.
///
/// Most responses pass through unchanged. For them, a `String` for every name and value, a
/// field array and a second pass to write them out again are work for nothing; as bytes, a
/// head is checked once by the parser and copied once, from the upstream's read buffer to the
/// client's write buffer, and values go on exactly as sent (non-ASCII bytes included).
/// ``headers`` builds the fields when something must read or change them: a route's response
/// policies, `Server-Timing`, `Strict-Transport-Security`, an HTTP/1.0 or HTTP/2 client, a
/// connection that closes after the response, a 204 or 304 whose `Content-Length` must go.
struct UpstreamResponseHead {
    var version: HTTPVersion
    let status: HTTPResponseStatus
    /// `status`'s code, as the parser read it: asking the status for it is a switch over every
    /// code NIO knows.
    let code: Int
    var fields: Fields
    /// The upstream sent a `Content-Length`. Describes the lines as they came; once the fields
    /// are built, they are what counts.
    let hasContentLength: Bool

    enum Fields {
        case lines(KeptLines)
        /// Built when the lines could not stay bytes: a `Connection` named fields, which is
        /// known only once they have gone by, or more lines were left out than
        /// ``KeptLines`` holds runs for.
        case built(HTTPHeaders)
    }

    /// The head's kept field lines, as runs of whole lines (CRLFs included) in the head's
    /// bytes: usually two, around the upstream's `Connection`. Four runs stored inline, so that
    /// keeping them allocates nothing (stored properties rather than an `InlineArray`, which
    /// would need a newer toolchain and macOS than the package asks for).
    struct KeptLines {
        static let maxRuns = 4

        /// The head's bytes: a slice of the upstream's read buffer, not a copy.
        let head: ByteBuffer
        /// Appended after the lines, as `x-request-id: <id>`.
        let requestID: RequestIdentifier?
        private var run0 = 0..<0
        private var run1 = 0..<0
        private var run2 = 0..<0
        private var run3 = 0..<0
        private var count = 0

        private subscript(run index: Int) -> Range<Int> {
            get {
                switch index {
                case 0: run0
                case 1: run1
                case 2: run2
                default: run3
                }
            }
            set {
                switch index {
                case 0: run0 = newValue
                case 1: run1 = newValue
                case 2: run2 = newValue
                default: run3 = newValue
                }
            }
        }

        init(head: ByteBuffer, requestID: RequestIdentifier?) {
            self.head = head
            self.requestID = requestID
        }

        /// Keeps the line at `range` of the head's readable bytes; lines come in order. False
        /// when it would take a run more than there is room for.
        mutating func keep(_ range: Range<Int>) -> Bool {
            if count > 0, self[run: count - 1].upperBound == range.lowerBound {
                self[run: count - 1] = self[run: count - 1].lowerBound..<range.upperBound
                return true
            }
            guard count < Self.maxRuns else { return false }
            self[run: count] = range
            count += 1
            return true
        }

        /// Copies the kept lines, then the request's ID, into `buffer`.
        func write(to buffer: inout ByteBuffer) {
            head.withUnsafeReadableBytes { bytes in
                for run in 0..<count {
                    buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[self[run: run]]))
                }
            }
            if let requestID {
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: requestID.fieldLength) { requestID.writeField(into: $0, at: 0) }
            }
        }

        /// The kept lines as fields. They were checked as they were read.
        var headers: HTTPHeaders {
            var fields: [(String, String)] = []
            head.withUnsafeReadableBytes { bytes in
                for run in 0..<count {
                    var lines = HTTP1Syntax.Lines(bytes: UnsafeRawBufferPointer(rebasing: bytes[self[run: run]]))
                    while lines.index < lines.bytes.count, let line = try? lines.next(), let (name, value) = try? HTTP1Syntax.field(line) {
                        fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
                    }
                }
            }
            if let requestID { fields.append(("x-request-id", requestID.description)) }
            return HTTPHeaders(fields)
        }
    }

    var headers: HTTPHeaders {
        switch fields {
        case .lines(let lines): lines.headers
        case .built(let headers): headers
        }
    }

    /// The head with its fields built, to change them.
    var built: HTTPResponseHead {
        HTTPResponseHead(version: version, status: status, headers: headers)
    }
}
