import GantryCore
import NIOHTTP1

/// `redirect:` answers with a redirect; the route's service is not called.
public struct RedirectPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// Where to; `${path}` and `${query}` (with its `?`) stand for the request's.
        public var location: String?
        /// 301, 302, 303, 307 or 308 (default).
        public var status: Int?
    }

    public static let kind = "redirect"

    public let location: String
    public let status: Int

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> RedirectPolicy? {
        let status = spec.status ?? 308
        if ![301, 302, 303, 307, 308].contains(status) { compilation.problem(at: ["status"], "must be 301, 302, 303, 307 or 308") }
        guard let location = spec.location, !location.isEmpty else {
            compilation.problem(at: ["location"], "missing required key \"location\"")
            return nil
        }
        return compilation.hasProblems ? nil : RedirectPolicy(location: location, status: status)
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        let target = request.target
        let resolved = location.replacingOccurrences(of: "${path}", with: String(target.path))
            .replacingOccurrences(of: "${query}", with: target.query.map { "?\($0)" } ?? "")
        var response = LocalResponse(.redirect, status: HTTPResponseStatus(statusCode: status), message: "", extraHeaders: [("location", resolved)])
        response.fixedBody = ("text/plain; charset=utf-8", "")
        return .respond(response)
    }
}
