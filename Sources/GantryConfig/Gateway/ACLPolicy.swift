/// `acl:` allows or denies consumer groups (Kong's acl), after an apiKey policy identified the
/// consumer. Deny wins; with an allow list, a consumer must be in one of its groups.
public struct ACLPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        public var allow: [String]?
        public var deny: [String]?
    }

    public static let kind = "acl"

    public let allow: [String]
    public let deny: [String]

    public var requires: (facts: CallerFacts, because: String)? { (.consumer, "checks consumer groups") }

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> ACLPolicy? {
        if (spec.allow ?? []).isEmpty && (spec.deny ?? []).isEmpty {
            compilation.problem("set allow or deny groups")
            return nil
        }
        return ACLPolicy(allow: spec.allow ?? [], deny: spec.deny ?? [])
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        let groups = request.caller.consumer?.groups ?? []
        let denied = groups.contains(where: deny.contains)
        let allowed = allow.isEmpty || groups.contains(where: allow.contains)
        guard denied || !allowed else { return .proceed }
        return .respond(LocalResponse(.forbidden, message: "consumer \(request.caller.consumer?.name ?? "-") may not use this route"))
    }
}
