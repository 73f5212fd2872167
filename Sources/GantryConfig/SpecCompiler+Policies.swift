import Foundation
import GantryCore

extension SpecCompiler {
    /// Compiles `gateway.policies`; returns them and their indices by name.
    mutating func compilePolicies(_ specs: [PolicySpec], services: [ServiceSettings], at path: SpecPath)
        -> ([GatewayPolicy], [String: Int])
    {
        var policies: [GatewayPolicy] = []
        var byName: [String: Int] = [:]
        for (index, spec) in specs.enumerated() {
            let here = path / index
            guard let name = spec.name, !name.isEmpty else {
                problem(here / "name", "missing required key \"name\"")
                continue
            }
            if byName[name] != nil {
                problem(here / "name", "duplicate policy name \"\(name)\"")
                continue
            }
            let kinds = [
                spec.jwt != nil, spec.rateLimit != nil, spec.apiKey != nil, spec.acl != nil, spec.ipFilter != nil, spec.cors != nil,
                spec.validate != nil, spec.transform != nil, spec.redirect != nil, spec.respond != nil, spec.oauth2 != nil,
            ].filter { $0 }.count
            guard kinds == 1 else {
                problem(
                    here, "set exactly one policy kind: jwt, oauth2, rateLimit, apiKey, acl, ipFilter, cors, validate, transform, redirect or respond")
                continue
            }
            let compiled: GatewayPolicy?
            if let jwt = spec.jwt {
                compiled = compileJWT(jwt, name: name, services: services, at: here / "jwt").map(GatewayPolicy.jwt)
            } else if let oauth2 = spec.oauth2 {
                compiled = compileOAuth2(oauth2, services: services, at: here / "oauth2").map(GatewayPolicy.oauth2)
            } else if let limit = spec.rateLimit {
                compiled = compileRateLimit(limit, name: name, at: here / "rateLimit").map(GatewayPolicy.rateLimit)
            } else {
                compiled = compileOtherPolicy(spec, at: here)
            }
            if let compiled {
                byName[name] = policies.count
                policies.append(compiled)
            }
        }
        return (policies, byName)
    }

    /// A route's `policies:` list as indices, checking that a rate limit keyed by a claim comes
    /// after a jwt policy.
    mutating func compileRoutePolicies(
        _ names: [String], policies: [GatewayPolicy], byName: [String: Int], at path: SpecPath
    ) -> [Int] {
        var result: [Int] = []
        for (position, name) in names.enumerated() {
            guard let index = byName[name] else {
                problem(path / position, "unknown policy \"\(name)\"" + Suggestion.hint(for: name, among: byName.keys))
                continue
            }
            let after = { (kind: (GatewayPolicy) -> Bool) in result.contains { kind(policies[$0]) } }
            let isJWT: (GatewayPolicy) -> Bool = { if case .jwt = $0 { true } else { false } }
            let isAPIKey: (GatewayPolicy) -> Bool = { if case .apiKey = $0 { true } else { false } }
            if case .rateLimit(let limit) = policies[index], case .claim(let claim) = limit.key, !after(isJWT) {
                problem(path / position, "rate limit \"\(name)\" is keyed by the \(claim) claim: list a jwt policy before it")
            }
            if case .rateLimit(let limit) = policies[index], limit.key == .consumer, !after(isAPIKey) {
                problem(path / position, "rate limit \"\(name)\" is keyed by the consumer: list an apiKey policy before it")
            }
            if case .acl = policies[index], !after(isAPIKey) {
                problem(path / position, "acl \"\(name)\" checks consumer groups: list an apiKey policy before it")
            }
            result.append(index)
        }
        return result
    }

    private mutating func compileJWT(_ spec: JWTPolicySpec, name: String, services: [ServiceSettings], at path: SpecPath)
        -> JWTPolicy?
    {
        let before = issues.count
        var source: JWTPolicy.KeySource?
        if let jwks = spec.jwks {
            source = compileRemote(jwks, defaultPath: "/.well-known/jwks.json", services: services, at: path / "jwks")
        }
        var staticKeys: [JWTKey] = []
        for (index, key) in (spec.keys ?? []).enumerated() {
            let here = path / "keys" / index
            switch (key.pemFile, key.jwksFile) {
            case (let file?, nil):
                guard let text = try? String(contentsOfFile: resolve(file), encoding: .utf8) else {
                    problem(here / "pemFile", "cannot read \(resolve(file))")
                    continue
                }
                do { staticKeys.append(try JWTKey.publicKey(pem: text, id: key.kid)) } catch {
                    problem(here / "pemFile", "not an RSA, P-256, P-384 or Ed25519 public key in PEM form")
                }
            case (nil, let file?):
                guard let data = FileManager.default.contents(atPath: resolve(file)) else {
                    problem(here / "jwksFile", "cannot read \(resolve(file))")
                    continue
                }
                do { staticKeys += try JWKSet.keys(from: data) } catch { problem(here / "jwksFile", "\(error)") }
            default:
                problem(here, "set exactly one of pemFile or jwksFile")
            }
        }
        if source == nil && spec.keys == nil { problem(path, "needs keys: set jwks: {service: …, path: …}, jwks: {url: …} or keys: [...]") }

        var forward: [(String, String)] = []
        for (index, item) in (spec.forwardClaims ?? []).enumerated() {
            guard let claim = item.claim, let header = item.header, Self.isToken(header) else {
                problem(path / "forwardClaims" / index, "write {claim: sub, header: X-User-ID}")
                continue
            }
            forward.append((claim, header.lowercased()))
        }
        let token: JWTPolicy.TokenSource
        switch (spec.from?.header, spec.from?.cookie, spec.from?.query) {
        case (nil, nil, nil): token = .bearer
        case (let header?, nil, nil): token = .header(header.lowercased())
        case (nil, let cookie?, nil): token = .cookie(cookie)
        case (nil, nil, let query?): token = .query(query)
        default:
            problem(path / "from", "set one of header, cookie or query")
            token = .bearer
        }
        let rules = JWTRules(
            issuer: spec.issuer, audiences: spec.audiences ?? [], leeway: spec.leeway?.duration ?? .seconds(60),
            requiredClaims: spec.requiredClaims ?? [])
        let refresh = positive(spec.jwks?.refreshInterval, default: .seconds(300), at: path / "jwks" / "refreshInterval")
        let refetch = positive(spec.jwks?.minRefetchInterval, default: .seconds(30), at: path / "jwks" / "minRefetchInterval")
        guard issues.count == before else { return nil }
        return JWTPolicy(
            name: name, rules: rules, keySource: source, refreshInterval: refresh, minRefetchInterval: refetch,
            staticKeys: staticKeys, forwardClaims: forward, tokenSource: token)
    }

    private mutating func compileOAuth2(_ spec: OAuth2Spec, services: [ServiceSettings], at path: SpecPath) -> OAuth2Policy? {
        let before = issues.count
        guard let source = spec.introspection else {
            problem(path / "introspection", "missing required key \"introspection\": {service: NAME, path: /…} or {url: http://…}")
            return nil
        }
        let remote = compileRemote(source, defaultPath: "/introspect", services: services, at: path / "introspection")
        var secret = spec.clientSecret
        if let file = spec.clientSecretFile {
            secret = (try? String(contentsOfFile: resolve(file), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            if secret == nil { problem(path / "clientSecretFile", "cannot read \(resolve(file))") }
        }
        if (spec.clientId == nil) != (secret == nil) { problem(path, "set clientId and clientSecret together") }
        var forward: [(String, String)] = []
        for (index, item) in (spec.forwardClaims ?? []).enumerated() {
            guard let claim = item.claim, let header = item.header, Self.isToken(header) else {
                problem(path / "forwardClaims" / index, "write {claim: client_id, header: X-Client-ID}")
                continue
            }
            forward.append((claim, header.lowercased()))
        }
        let ttl = positive(spec.cacheTTL, default: .seconds(300), at: path / "cacheTTL")
        guard issues.count == before, let remote else { return nil }
        return OAuth2Policy(
            source: remote, clientId: spec.clientId, clientSecret: secret, requiredScopes: spec.requiredScopes ?? [], cacheTTL: ttl,
            forwardClaims: forward)
    }

    /// `{service, path}` or `{url}`: where gantry fetches keys or introspects tokens.
    private mutating func compileRemote(_ spec: JWKSSourceSpec, defaultPath: String, services: [ServiceSettings], at path: SpecPath)
        -> JWTPolicy.KeySource?
    {
        switch (spec.url, spec.service) {
        case (let url?, nil):
            if !url.hasPrefix("http://") {
                problem(path / "url", "only http:// URLs are fetched; use {service: NAME, path: /…} for a service in gantry")
            }
            return .url(url)
        case (nil, let service?):
            if !services.contains(where: { $0.name == service }) {
                problem(path / "service", "unknown service \"\(service)\"" + Suggestion.hint(for: service, among: services.map(\.name)))
            }
            let remotePath = spec.path ?? defaultPath
            if !remotePath.hasPrefix("/") { problem(path / "path", "must start with /") }
            return .service(name: service, path: remotePath)
        default:
            problem(path, "set exactly one of url or service")
            return nil
        }
    }

    private mutating func compileRateLimit(_ spec: RateLimitSpec, name: String, at path: SpecPath) -> RateLimitPolicy? {
        guard let requests = spec.requests, requests >= 1 else {
            problem(path / "requests", "needs a number of requests of at least 1")
            return nil
        }
        guard let per = spec.per?.duration, per > .zero else {
            problem(path / "per", "needs a period such as 1s or 1m")
            return nil
        }
        if let burst = spec.burst, burst < 1 { problem(path / "burst", "must be at least 1") }
        var key = RateLimitPolicy.Key.clientIP
        if let spec = spec.key {
            let chosen = [spec.clientIP == true, spec.header != nil, spec.claim != nil, spec.route == true, spec.consumer == true]
                .filter { $0 }.count
            if chosen != 1 {
                problem(path / "key", "set exactly one of clientIP: true, header: NAME, claim: NAME, consumer: true or route: true")
            } else if spec.consumer == true {
                key = .consumer
            } else if let header = spec.header {
                key = .header(header.lowercased())
            } else if let claim = spec.claim {
                key = .claim(claim)
            } else if spec.route == true {
                key = .route
            }
        }
        var store: RateLimitPolicy.SharedStore?
        if let shared = spec.store {
            let here = path / "store"
            if let address = shared.redis, let endpoint = EndpointAddress(parsing: address) {
                let failOpen: Bool
                switch shared.onFailure ?? "allow" {
                case "allow": failOpen = true
                case "deny": failOpen = false
                default:
                    problem(here / "onFailure", "must be allow or deny")
                    failOpen = true
                }
                let timeout = positive(shared.timeout, default: .milliseconds(100), at: here / "timeout")
                store = .init(host: endpoint.host, port: endpoint.port, failOpen: failOpen, timeout: timeout)
            } else {
                problem(here / "redis", "write the Redis address as host:port, e.g. 127.0.0.1:6379")
            }
        }
        return RateLimitPolicy(name: name, bucket: TokenBucket(requests: requests, per: per, burst: spec.burst), key: key, store: store)
    }

    /// A path from the file, relative to the file's directory.
    func resolve(_ file: String) -> String {
        guard !file.hasPrefix("/"), let slash = sourceFile.lastIndex(of: "/") else { return file }
        return String(sourceFile[..<slash]) + "/" + file
    }
}
