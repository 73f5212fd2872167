import GantryCore
import NIOCore
import NIOHTTP1

/// A client's request head as gantry admits it: the request line, what its fields say
/// (``HeaderFacts``, learnt as they were read) and the fields themselves.
///
/// An HTTP/1.1 head keeps its field lines as the bytes that came, a slice of the read buffer,
/// already checked by ``HTTPRequestParser``. They become `HTTPHeaders` only for what reads them
/// as such: a route's policies, the tracer. The usual request needs only its facts, a header
/// match or a hash key read from the lines, and its lines copied upstream
/// (``UpstreamRequestHead``), so it is never made into strings. An HTTP/2 stream's head comes
/// from NIO's codec as `HTTPHeaders`.
///
/// A class: the head passes through the pipelining queue, the admission and the upstream
/// head, and as a struct of this size (its facts above all) every step copied it and
/// retained each of its strings.
final class ClientRequestHead: Sendable {
    enum Fields {
        /// The field lines, each with its CRLF, without the blank line after them.
        case lines(ByteBuffer)
        case headers(HTTPHeaders)
    }

    /// An empty head, in place of a request's once its exchange has ended.
    static let released = ClientRequestHead(method: .GET, uri: "/", version: .http1_1, facts: HeaderFacts(), lines: ByteBuffer())

    let method: HTTPMethod
    let uri: String
    let version: HTTPVersion
    let facts: HeaderFacts
    let fields: Fields

    init(method: HTTPMethod, uri: String, version: HTTPVersion, facts: HeaderFacts, lines: ByteBuffer) {
        self.method = method
        self.uri = uri
        self.version = version
        self.facts = facts
        self.fields = .lines(lines)
    }

    init(_ head: HTTPRequestHead) {
        method = head.method
        uri = head.uri
        version = head.version
        facts = HeaderFacts(head.headers)
        fields = .headers(head.headers)
    }

    /// The fields as `HTTPHeaders`, made from the lines each time it is asked for.
    var headers: HTTPHeaders {
        switch fields {
        case .headers(let headers): headers
        case .lines: HTTPHeaders(pairs { _ in true })
        }
    }

    /// The fields whose names `keep` accepts, as strings, in order. Fields that came as strings
    /// are kept as they are.
    func pairs(keeping keep: (_ name: UnsafeRawBufferPointer) -> Bool) -> [(String, String)] {
        var pairs: [(String, String)] = []
        switch fields {
        case .lines(let lines):
            Self.forEachField(in: lines) { name, value, _ in
                if keep(name) { pairs.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))) }
            }
        case .headers(let headers):
            pairs.reserveCapacity(headers.count + 7)  // room for the forwarding fields
            for (name, value) in headers {
                var bytes = name
                if bytes.withUTF8({ keep(UnsafeRawBufferPointer($0)) }) { pairs.append((name, value)) }
            }
        }
        return pairs
    }

    /// The head as NIO's type, for the code that reads it so (policies).
    var nioHead: HTTPRequestHead {
        HTTPRequestHead(version: version, method: method, uri: uri, headers: headers)
    }

    /// Each field's name and value, whichever way the fields came.
    func forEachField(_ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Void) {
        switch fields {
        case .lines(let lines):
            Self.forEachField(in: lines) { name, value, _ in body(name, value) }
        case .headers(let headers):
            for (name, value) in headers {
                var name = name
                var value = value
                name.withUTF8 { name in value.withUTF8 { value in body(UnsafeRawBufferPointer(name), UnsafeRawBufferPointer(value)) } }
            }
        }
    }

    /// Each field of lines the parser has checked: its name, its value without the
    /// surrounding whitespace, and its whole line with the CRLF.
    static func forEachField(
        in lines: ByteBuffer,
        _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ line: UnsafeRawBufferPointer) -> Void
    ) {
        lines.withUnsafeReadableBytes { bytes in
            var start = 0
            while let lf = HTTP1Syntax.firstLF(in: bytes, from: start), lf > start {
                let line = UnsafeRawBufferPointer(rebasing: bytes[start...lf])
                start = lf + 1
                guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
                let name = UnsafeRawBufferPointer(rebasing: line[..<colon])
                let value = HTTP1Syntax.trimmed(UnsafeRawBufferPointer(rebasing: line[(colon + 1)..<(line.count - 2)]))
                body(name, value, line)
            }
        }
    }
}

/// Header matches of routes read the fields where they are, without building them.
extension ClientRequestHead: HeaderLookup {
    func first(name: String) -> String? {
        switch fields {
        case .headers(let headers):
            return headers.first(name: name)
        case .lines(let lines):
            let wanted = name.lowercased()
            var found: String?
            Self.forEachField(in: lines) { fieldName, value, _ in
                if found == nil, HeaderFacts.equal(fieldName, wanted) { found = String(decoding: value, as: UTF8.self) }
            }
            return found
        }
    }
}
