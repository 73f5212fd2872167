import NIOHTTP1

/// `respond:` answers with a fixed response; the route's service is not called.
public struct RespondPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// Default 200.
        public var status: Int?
        public var body: String?
        /// Default `text/plain; charset=utf-8`.
        public var contentType: String?
    }

    public static let kind = "respond"

    public let status: Int
    public let body: String
    public let contentType: String

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> RespondPolicy? {
        let status = spec.status ?? 200
        guard (200...599).contains(status) else {
            compilation.problem(at: ["status"], "must be between 200 and 599")
            return nil
        }
        return RespondPolicy(status: status, body: spec.body ?? "", contentType: spec.contentType ?? "text/plain; charset=utf-8")
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        var response = LocalResponse(.fixedResponse, status: HTTPResponseStatus(statusCode: status), message: "")
        response.fixedBody = (contentType, body)
        return .respond(response)
    }
}
