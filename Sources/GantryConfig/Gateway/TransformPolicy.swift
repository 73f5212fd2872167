import GantryCore
import NIOHTTP1

/// `transform:` changes on the way upstream and back (Kong's request- and
/// response-transformer): a path prefix stripped, the path rewritten by a regular expression,
/// header fields removed, set and added.
public struct TransformPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// Removed from the start of the path: `/api` turns `/api/users` into `/users`.
        public var stripPrefix: String?
        /// `{regex: "^/v1/(.*)$", replacement: "/$1"}` on the path.
        public var rewrite: RewriteSpec?
        public var requestHeaders: HeaderEditsSpec?
        public var responseHeaders: HeaderEditsSpec?
    }

    public struct RewriteSpec: Decodable, Sendable {
        public var regex: String?
        public var replacement: String?
    }

    public static let kind = "transform"

    public let stripPrefix: String?
    public let rewrite: (pattern: RewritePattern, replacement: String)?
    public let requestHeaders: HeaderEdits
    public let responseHeaders: HeaderEdits

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> TransformPolicy? {
        if let prefix = spec.stripPrefix, !prefix.hasPrefix("/") || prefix.count < 2 {
            compilation.problem(at: ["stripPrefix"], "must be a path prefix such as /api")
        }
        var rewrite: (RewritePattern, String)?
        if let spec = spec.rewrite {
            if let source = spec.regex, let replacement = spec.replacement {
                do { rewrite = (try RewritePattern(source), replacement) } catch {
                    compilation.problem(at: ["rewrite", "regex"], "invalid regular expression: \(error)")
                }
            } else {
                compilation.problem(at: ["rewrite"], "write {regex: \"^/v1/(.*)$\", replacement: \"/$1\"}")
            }
        }
        let policy = TransformPolicy(
            stripPrefix: spec.stripPrefix.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }, rewrite: rewrite,
            requestHeaders: HeaderEdits.compile(spec.requestHeaders, in: &compilation, at: "requestHeaders"),
            responseHeaders: HeaderEdits.compile(spec.responseHeaders, in: &compilation, at: "responseHeaders"))
        return compilation.hasProblems ? nil : policy
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        let target = URITarget(request.upstream.uri)
        var path = target.path
        var changed = false
        if let stripPrefix, path == stripPrefix || path.hasPrefix(stripPrefix + "/") {
            path = path.dropFirst(stripPrefix.count)
            if path.isEmpty { path = "/" }
            changed = true
        }
        if let (pattern, replacement) = rewrite, let rewritten = pattern.rewrite(String(path), with: replacement) {
            path = Substring(rewritten.hasPrefix("/") ? rewritten : "/" + rewritten)
            changed = true
        }
        if changed { request.upstream.uri = target.replacingPath(with: path) }
        requestHeaders.apply(to: &request.upstream.headers)
        request.responseEdits.append(responseHeaders)
        return .proceed
    }
}
