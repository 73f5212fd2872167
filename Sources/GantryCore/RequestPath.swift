/// Splits and normalises an HTTP request target (RFC 9112 §3.2) for routing.
public struct RequestTarget: Sendable, Equatable {
    /// The path with dot segments removed and repeated slashes merged, as routed and forwarded.
    public var path: Substring
    /// The query without its `?`, or nil when the target had none.
    public var query: Substring?
    /// The authority of an absolute-form target (`http://host:port/path`), if any.
    public var authority: Substring?
    /// Normalising changed the path, so the target must be rewritten when forwarded.
    public var rewritten: Bool = false

    public enum Problem: Error, Equatable, Sendable {
        case empty
        case notOriginForm
        case escapesRoot
    }

    /// Parses origin-form (`/a/b?x`) and absolute-form (`http://h/a`) targets. Dot segments are
    /// resolved (RFC 3986 §5.2.4) so that `/app/../auth` can never be routed as `/app` and then
    /// reach `/auth` on the upstream; a `..` above the root is rejected rather than clamped.
    public static func parse(_ target: String) -> Result<RequestTarget, Problem> {
        var rest = Substring(target)
        var authority: Substring?
        if rest.isEmpty { return .failure(.empty) }
        if rest.utf8.first != UInt8(ascii: "/") {
            let lower = rest.prefix(8).lowercased()
            let schemeLength: Int
            if lower.hasPrefix("http://") {
                schemeLength = 7
            } else if lower.hasPrefix("https://") {
                schemeLength = 8
            } else {
                return .failure(.notOriginForm)
            }
            rest = rest.dropFirst(schemeLength)
            let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            authority = rest[..<end]
            rest = rest[end...]
            if rest.isEmpty { rest = "/" }
            if rest.first == "?" { rest = "/" + rest }
        }
        var query: Substring?
        var path = rest
        if let mark = rest.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = rest[..<mark]
            query = rest[rest.index(after: mark)...]
        }
        let normal = !needsNormalizing(path)
        guard let normalized = normal ? path : normalize(path) else { return .failure(.escapesRoot) }
        return .success(RequestTarget(path: normalized, query: query, authority: authority, rewritten: authority != nil || !normal))
    }

    /// The target as forwarded upstream: normalised path plus the untouched query.
    public var forwarded: String {
        guard let query else { return String(path) }
        return "\(path)?\(query)"
    }

    /// Removes `.` and `..` segments and merges `//`. Returns the input itself when it is already
    /// normal (the common case costs one scan and no allocation); nil if `..` climbs above `/`.
    static func normalize(_ path: Substring) -> Substring? {
        if !needsNormalizing(path) { return path }
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." {
                if segments.isEmpty { return nil }
                segments.removeLast()
                continue
            }
            segments.append(segment)
        }
        let trailing = path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..")
        var result = "/" + segments.joined(separator: "/")
        if trailing && !segments.isEmpty { result += "/" }
        return Substring(result)
    }

    static func needsNormalizing(_ path: Substring) -> Bool {
        var previous: UInt8 = 0
        var segmentStart = true
        var dots = 0
        for byte in path.utf8 {
            if byte == UInt8(ascii: "/") {
                if previous == UInt8(ascii: "/") { return true }
                if segmentStart && dots > 0 && dots <= 2 { return true }
                segmentStart = true
                dots = 0
            } else if byte == UInt8(ascii: ".") && (segmentStart && dots < 3) {
                dots += 1
            } else {
                segmentStart = false
                dots = 3  // a segment with anything else is not a dot segment
            }
            previous = byte
        }
        return segmentStart && dots > 0 && dots <= 2
    }
}
