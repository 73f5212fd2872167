import GantryCore
import NIOHTTP1

/// Where a request carries a credential: `Authorization: Bearer`, a header, a cookie or a query
/// parameter. Read from the request as the client sent it.
public enum TokenSource: Sendable, Hashable {
    case bearer
    /// Lowercased.
    case header(String)
    case cookie(String)
    case query(String)

    /// The credential in `head`, or nil when it carries none.
    public func token(in head: HTTPRequestHead) -> Substring? {
        switch self {
        case .bearer:
            // Bytes, not characters: counting a token's characters walks all of it (grapheme
            // breaking), on every request.
            guard let value = head.headers.first(name: "authorization"), value.utf8.count > 7,
                value.utf8.prefix(7).elementsEqual("bearer ".utf8, by: { $0 | 0x20 == $1 })
            else {
                return nil
            }
            return value.dropFirst(7).drop(while: { $0 == " " })
        case .header(let name):
            return head.headers.first(name: name).map { Substring($0) }
        case .cookie(let name):
            return Cookies.value(named: name, in: head.headers[canonicalForm: "cookie"].map(String.init))
        case .query(let name):
            return URITarget(head.uri).parameter(name).map { Substring($0) }
        }
    }

    /// `from:` compiled, `fallback` when the spec has none; `allowed` lists the kinds a policy reads.
    static func compile(
        _ spec: TokenSourceSpec?, fallback: TokenSource, allowsCookie: Bool = true, in compilation: inout PolicyCompilation
    ) -> TokenSource {
        guard let spec else { return fallback }
        if let header = spec.header { return .header(compilation.headerName(header, at: ["from", "header"])) }
        if let query = spec.query { return .query(query) }
        if let cookie = spec.cookie {
            if !allowsCookie { compilation.problem(at: ["from", "cookie"], "this policy reads a header or a query parameter") }
            return .cookie(cookie)
        }
        return fallback
    }
}

/// `from:` `{header: X-Token}`, `{cookie: session}` or `{query: access_token}`.
public struct TokenSourceSpec: Decodable, Sendable, ExclusiveKeys {
    public var header: String?
    public var cookie: String?
    public var query: String?

    public static let exclusiveKeys = ExclusiveKeySet(["header", "cookie", "query"])
}
