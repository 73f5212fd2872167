import GantryCore

/// A gateway policy, compiled. Routes refer to policies by index into
/// `RuntimeSnapshot.policies`, in the order they run.
public enum GatewayPolicy: Sendable {
    case jwt(JWTPolicy)
    case rateLimit(RateLimitPolicy)

    public var name: String {
        switch self {
        case .jwt(let policy): return policy.name
        case .rateLimit(let policy): return policy.name
        }
    }
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
    }

    public let name: String
    public let bucket: TokenBucket
    public let key: Key
}
