/// The policy kinds gantry knows, in the order the file's documentation lists them. A new kind
/// is one file with a type that conforms to ``GatewayPolicy``, and its line here.
public enum GatewayPolicies {
    public static let kinds: [any GatewayPolicy.Type] = [
        JWTPolicy.self,
        OAuth2Policy.self,
        RateLimitPolicy.self,
        APIKeyPolicy.self,
        ACLPolicy.self,
        IPFilterPolicy.self,
        CORSPolicy.self,
        ValidatePolicy.self,
        TransformPolicy.self,
        RedirectPolicy.self,
        RespondPolicy.self,
    ]

    static func kind(named key: String) -> (any GatewayPolicy.Type)? {
        kinds.first { $0.kind == key }
    }
}

/// `gateway.policies[i]`: a name, and exactly one kind's spec under the kind's key.
public struct PolicySpec: Decodable, Sendable, ExclusiveKeys {
    public let name: String?
    /// The kind's key: `jwt`, `rateLimit`…; empty when the entry does not set exactly one.
    public let kind: String
    /// Nil when the entry does not set exactly one kind (the decoder has said so).
    let body: (any PolicySpecBody)?
    /// The entry as written, in a canonical form: with its name and the files its kind reads,
    /// what tells one policy from another across reloads (``PolicyIdentity``).
    let definition: String

    public static var exclusiveKeys: ExclusiveKeySet {
        ExclusiveKeySet(GatewayPolicies.kinds.map { $0.kind }, noun: "policy kind")
    }

    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) {
            guard stringValue == "name" || GatewayPolicies.kind(named: stringValue) != nil else { return nil }
            self.stringValue = stringValue
        }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        name = try container.decodeIfPresent(String.self, forKey: Key(stringValue: "name")!)
        // The decoder has reported an entry without exactly one kind (ExclusiveKeys).
        let chosen = GatewayPolicies.kinds.filter { container.contains(Key(stringValue: $0.kind)!) }
        if chosen.count == 1 {
            kind = chosen[0].kind
            body = try Self.decodeBody(chosen[0], from: container, key: Key(stringValue: kind)!)
        } else {
            kind = ""
            body = nil
        }
        definition = (decoder as? NodeDecoder)?.node.canonicalText ?? ""
    }

    private static func decodeBody<Kind: GatewayPolicy>(_ kind: Kind.Type, from container: KeyedDecodingContainer<Key>, key: Key) throws
        -> any PolicySpecBody
    {
        DecodedPolicySpec<Kind>(spec: try container.decode(Kind.Spec.self, forKey: key))
    }
}

/// A kind's decoded spec, compiled by its kind.
protocol PolicySpecBody: Sendable {
    func compile(name: String, in compilation: inout PolicyCompilation) -> (any GatewayPolicy)?
}

struct DecodedPolicySpec<Kind: GatewayPolicy>: PolicySpecBody {
    let spec: Kind.Spec

    func compile(name: String, in compilation: inout PolicyCompilation) -> (any GatewayPolicy)? {
        Kind.compile(spec, name: name, in: &compilation)
    }
}

/// A policy from `gateway.policies`, compiled.
public struct CompiledPolicy: Sendable {
    public let name: String
    public let identity: PolicyIdentity
    public let policy: any GatewayPolicy

    public var kind: String { policy.kind }
}

/// What makes a policy the same policy across reloads: its name, its entry as written and the
/// contents of the files it reads. State the data plane keeps for a policy (a rate limit's
/// buckets, a jwt policy's keys) is kept under it: a reload that leaves the policy as it was
/// keeps the state, and a changed policy starts afresh.
public struct PolicyIdentity: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    let definition: String

    public init(name: String, definition: String) {
        self.name = name
        self.definition = definition
    }

    public var description: String { name }
}
