import GantryCore

/// `ipFilter:` client addresses by CIDR. Deny wins; with an allow list, an address must be on it.
public struct IPFilterPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        public var allow: [String]?
        public var deny: [String]?
    }

    public static let kind = "ipFilter"

    public let allow: [CIDR]
    public let deny: [CIDR]

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> IPFilterPolicy? {
        func cidrs(_ list: [String]?, _ key: PathComponent) -> [CIDR] {
            (list ?? []).enumerated().compactMap { index, text in
                guard let cidr = CIDR(text) else {
                    compilation.problem(at: [key, .index(index)], "\"\(text)\" is not an address or CIDR such as 10.0.0.0/8 or 2001:db8::/32")
                    return nil
                }
                return cidr
            }
        }
        if spec.allow == nil && spec.deny == nil { compilation.problem("set allow or deny") }
        let policy = IPFilterPolicy(allow: cidrs(spec.allow, "allow"), deny: cidrs(spec.deny, "deny"))
        return compilation.hasProblems ? nil : policy
    }

    public func admits(_ ip: String) -> Bool {
        if deny.contains(where: { $0.contains(ip) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(ip) }
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        if admits(request.clientIP) { return .proceed }
        return .respond(LocalResponse(.forbidden, message: "client address \(request.clientIP) is not allowed"))
    }
}
