import GantryCore
import NIOHTTP1

/// `apiKey:` consumers identified by a key (Kong's key-auth); the consumer's name goes upstream
/// and the key stays at the gateway. Keys are kept as SHA-256 digests.
public struct APIKeyPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// Where the key is: `{header: X-API-Key}` (default) or `{query: api_key}`.
        public var from: TokenSourceSpec?
        public var consumers: [ConsumerSpec]?
        /// Header carrying the consumer's name upstream. Default `X-Consumer`.
        public var forwardAs: String?
    }

    public struct ConsumerSpec: Decodable, Sendable {
        public var name: String?
        public var groups: [String]?
        /// SHA-256 digests of the consumer's keys, in hex: `printf %s KEY | sha256sum`.
        public var keySHA256: [String]?
    }

    public static let kind = "apiKey"
    public static let establishes: CallerFacts = .consumer

    public let keys: APIKeys
    public let source: TokenSource
    /// Lowercased.
    public let forwardAs: String

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> APIKeyPolicy? {
        var consumers: [(APIKeys.Consumer, [String])] = []
        for (index, consumer) in (spec.consumers ?? []).enumerated() {
            guard let name = consumer.name, !name.isEmpty else {
                compilation.problem(at: ["consumers", .index(index), "name"], "missing required key \"name\"")
                continue
            }
            let digests = consumer.keySHA256 ?? []
            for (position, digest) in digests.enumerated() where digest.count != 64 || !digest.allSatisfy(\.isHexDigit) {
                compilation.problem(
                    at: ["consumers", .index(index), "keySHA256", .index(position)], "must be a hex SHA-256 digest: printf %s KEY | sha256sum")
            }
            consumers.append((APIKeys.Consumer(name: name, groups: consumer.groups ?? []), digests))
        }
        if consumers.isEmpty { compilation.problem(at: ["consumers"], "list at least one consumer with keySHA256") }
        let source = TokenSource.compile(spec.from, fallback: .header("x-api-key"), allowsCookie: false, in: &compilation)
        let forward = compilation.headerName(spec.forwardAs ?? "X-Consumer", at: ["forwardAs"])
        guard !compilation.hasProblems else { return nil }
        return APIKeyPolicy(keys: APIKeys(consumers), source: source, forwardAs: forward)
    }

    public func evaluate(_ request: inout PolicyRequest, shared: NoPolicyState, loop: NoPolicyState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        request.upstream.headers.remove(name: forwardAs)
        guard let key = source.token(in: request.original) else {
            return .respond(LocalResponse(.unauthorized, message: "no API key"))
        }
        guard let consumer = keys.consumer(presenting: key) else {
            return .respond(LocalResponse(.unauthorized, message: "unknown API key"))
        }
        request.caller.consumer = consumer
        request.upstream.headers.add(name: forwardAs, value: consumer.name)
        if case .header(let name) = source { request.upstream.headers.remove(name: name) }  // the key stays at the gateway
        return .proceed
    }
}
