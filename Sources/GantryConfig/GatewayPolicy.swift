import GantryCore

/// A gateway policy, compiled. Routes refer to policies by index into
/// `RuntimeSnapshot.policies`, in the order they run.
public enum GatewayPolicy: Sendable {
    case jwt(JWTPolicy)
    case rateLimit(RateLimitPolicy)
    case apiKey(APIKeyPolicy)
    case acl(ACLPolicy)
    case ipFilter(IPFilterPolicy)
    case cors(CORSRules)
    case validate(ValidationPolicy)
    case transform(TransformPolicy)
    case redirect(location: String, status: Int)
    case respond(status: Int, body: String, contentType: String)
    case oauth2(OAuth2Policy)
}

extension GatewayPolicy {
    /// `jwt`, `rateLimit` … as the file names them.
    public var kind: String {
        switch self {
        case .jwt: "jwt"
        case .rateLimit: "rateLimit"
        case .apiKey: "apiKey"
        case .acl: "acl"
        case .ipFilter: "ipFilter"
        case .cors: "cors"
        case .validate: "validate"
        case .transform: "transform"
        case .redirect: "redirect"
        case .respond: "respond"
        case .oauth2: "oauth2"
        }
    }
}

public struct OAuth2Policy: Sendable {
    public let source: JWTPolicy.KeySource
    public let clientId: String?
    public let clientSecret: String?
    public let requiredScopes: [String]
    public let cacheTTL: Duration
    public let forwardClaims: [(claim: String, header: String)]
}

public struct APIKeyPolicy: Sendable {
    public let keys: APIKeys
    public let source: JWTPolicy.TokenSource
    /// Lowercased.
    public let forwardAs: String
}

public struct ACLPolicy: Sendable {
    public let allow: [String]
    public let deny: [String]
}

public struct IPFilterPolicy: Sendable {
    public let allow: [CIDR]
    public let deny: [CIDR]

    /// Deny wins; with an allow list, an address must be on it.
    public func admits(_ ip: String) -> Bool {
        if deny.contains(where: { $0.contains(ip) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(ip) }
    }
}

public struct ValidationPolicy: Sendable {
    public let methods: [String]
    public let requiredHeaders: [String]
    public let requiredQuery: [String]
    /// Lowercased media types.
    public let contentTypes: [String]
    public let maxBodySize: Int?
    public let jsonSchema: JSONSchema?
}

public struct HeaderEdits: Sendable {
    public var add: [(String, String)] = []
    public var set: [(String, String)] = []
    /// Lowercased.
    public var remove: [String] = []

    public var isEmpty: Bool { add.isEmpty && set.isEmpty && remove.isEmpty }

    public init(add: [(String, String)] = [], set: [(String, String)] = [], remove: [String] = []) {
        self.add = add
        self.set = set
        self.remove = remove
    }
}

public struct TransformPolicy: Sendable {
    public let stripPrefix: String?
    public let rewrite: (pattern: RewritePattern, replacement: String)?
    public let requestHeaders: HeaderEdits
    public let responseHeaders: HeaderEdits
}

public struct JWTPolicy: Sendable {
    public enum KeySource: Sendable, Hashable {
        case service(name: String, path: String)
        case url(String)
    }

    public enum TokenSource: Sendable, Hashable {
        case bearer
        case header(String)
        case cookie(String)
        case query(String)
    }

    public let name: String
    public let rules: JWTRules
    public let keySource: KeySource?
    public let refreshInterval: Duration
    public let minRefetchInterval: Duration
    /// Keys from files, always used (besides fetched ones).
    public let staticKeys: [JWTKey]
    /// (claim, lowercased header name)
    public let forwardClaims: [(claim: String, header: String)]
    public let tokenSource: TokenSource
}

public struct RateLimitPolicy: Sendable {
    public enum Key: Sendable, Hashable {
        case clientIP
        case header(String)
        case claim(String)
        case route
        case consumer
    }

    public struct SharedStore: Sendable, Hashable {
        public let host: String
        public let port: Int
        public let failOpen: Bool
        public let timeout: Duration
    }

    public let name: String
    public let bucket: TokenBucket
    public let key: Key
    /// nil: the limit is kept in this gantry's memory.
    public let store: SharedStore?
}
