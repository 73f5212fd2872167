import GantryCore

/// How a request's body is framed (RFC 9112 §6). The parser has already rejected most bad
/// framing; this is the proxy's own check before anything is forwarded (and the only one for
/// HTTP/2 streams).
enum Framing {
    case none
    case contentLength(Int)
    case chunked
    case invalid(String)
    /// A transfer coding besides chunked (gzip, chunked): gantry would forward the body
    /// decoded from chunked but still gzip-coded, with nothing saying so. Answered 501, as
    /// nginx does.
    case unsupportedCoding

    /// Borrowing: an initializer takes its arguments owned, so the caller copied the facts
    /// (a retain of each of their strings) only for this to read them and let them go.
    init(_ facts: borrowing HeaderFacts) {
        if !facts.transferEncodings.isEmpty {
            guard facts.contentLengthCount == 0 else {
                self = .invalid("a request must not have both Content-Length and Transfer-Encoding")
                return
            }
            let codings = Self.codings(facts.transferEncodings)
            guard codings.last == "chunked", codings.dropLast().allSatisfy({ $0 != "chunked" }) else {
                self = .invalid("Transfer-Encoding must end with chunked, once")
                return
            }
            self = codings.count == 1 ? .chunked : .unsupportedCoding
            return
        }
        guard let length = facts.contentLength else {
            self = .none
            return
        }
        guard !facts.contentLengthsDiffer, !length.isEmpty, length.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(length)
        else {
            self = .invalid("Content-Length must be one decimal number")
            return
        }
        self = .contentLength(value)
    }

    /// The lowercased transfer codings of `Transfer-Encoding` values, in order.
    private static func codings(_ values: [String]) -> [String] {
        HTTPList.lowercasedTokens(in: values)
    }

    var isChunked: Bool {
        if case .chunked = self { return true }
        return false
    }

    var hasBody: Bool {
        switch self {
        case .chunked, .unsupportedCoding: return true
        case .contentLength(let length): return length > 0
        case .none, .invalid: return false
        }
    }
}
