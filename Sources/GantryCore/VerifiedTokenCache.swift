/// Tokens that verified, each with the time window in which that verdict holds (from `exp`,
/// `nbf` and `iat` with the leeway), so a token seen again skips the signature check and the
/// JSON decoding, as Envoy's `jwt_cache_config` does. Bounded (emptied when full); the owner
/// empties it whenever the keys change. Pure: time is a parameter (seconds since 1970).
public struct VerifiedTokenCache: Sendable {
    struct Entry: Sendable {
        let claims: [String: JSONValue]
        let validFrom: Double
        let validUntil: Double
    }

    private var entries: [String: Entry] = [:]
    public let capacity: Int
    /// Tokens without `exp` are verified again after this long.
    public let recheckAfter: Double

    public init(capacity: Int = 10_000, recheckAfter: Double = 300) {
        self.capacity = capacity
        self.recheckAfter = recheckAfter
    }

    public var count: Int { entries.count }

    public func lookup(_ token: String, now: Double) -> [String: JSONValue]? {
        guard let entry = entries[token], now >= entry.validFrom, now < entry.validUntil else { return nil }
        return entry.claims
    }

    /// Remembers a token `JWTVerifier` accepted at `now` under `rules`.
    public mutating func store(_ token: String, claims: [String: JSONValue], rules: JWTRules, now: Double) {
        let leeway = Double(rules.leeway.components.seconds)
        func number(_ name: String) -> Double? {
            if case .number(let value)? = claims[name] { value } else { nil }
        }
        let validUntil = number("exp").map { $0 + leeway } ?? now + recheckAfter
        let validFrom = max(number("nbf") ?? -.infinity, number("iat") ?? -.infinity) - leeway
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[token] = Entry(claims: claims, validFrom: validFrom, validUntil: min(validUntil, now + recheckAfter))
    }

    public mutating func removeAll() {
        entries.removeAll()
    }
}
