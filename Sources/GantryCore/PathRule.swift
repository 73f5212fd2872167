/// Kubernetes Ingress `pathType`.
public enum PathType: String, Sendable, Hashable, CaseIterable {
    case exact = "Exact"
    case prefix = "Prefix"
}

/// The path part of an ingress rule.
///
/// `Exact` compares the whole path, case-sensitively. `Prefix` compares path elements split by
/// `/`: `/foo` matches `/foo`, `/foo/` and `/foo/bar` but not `/foobar`, and a trailing slash in
/// the rule is ignored (`/foo/` behaves like `/foo`). `/` as a prefix matches every path.
public struct PathRule: Sendable, Hashable, CustomStringConvertible {
    public let type: PathType
    /// The path as compared: for `Prefix`, without its trailing slash (except `/` itself).
    public let path: String

    public init(type: PathType, path: String) {
        self.type = type
        if type == .prefix, path.count > 1, path.hasSuffix("/") {
            var trimmed = Substring(path)
            while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
            self.path = String(trimmed)
        } else {
            self.path = path
        }
    }

    public var description: String { "\(type.rawValue) \(path)" }

    /// The length that orders rules: the longest matching path wins.
    public var specificity: Int { path.utf8.count }

    public func matches(_ requestPath: Substring) -> Bool {
        let rule = path.utf8
        let request = requestPath.utf8
        switch type {
        case .exact:
            return request.elementsEqual(rule)
        case .prefix:
            if rule.count == 1 { return request.first == UInt8(ascii: "/") }  // "/": every path, but not "*"
            guard request.starts(with: rule) else { return false }
            if request.count == rule.count { return true }
            return request[request.index(request.startIndex, offsetBy: rule.count)] == UInt8(ascii: "/")
        }
    }
}
