import Foundation
import GantryCore

extension SpecCompiler {
    /// apiKey, acl, ipFilter, cors, validate, transform, redirect and respond.
    mutating func compileOtherPolicy(_ spec: PolicySpec, at path: SpecPath) -> GatewayPolicy? {
        let before = issues.count
        let policy: GatewayPolicy
        if let apiKey = spec.apiKey {
            policy = .apiKey(compileAPIKey(apiKey, at: path / "apiKey"))
        } else if let acl = spec.acl {
            if (acl.allow ?? []).isEmpty && (acl.deny ?? []).isEmpty { problem(path / "acl", "set allow or deny groups") }
            policy = .acl(ACLPolicy(allow: acl.allow ?? [], deny: acl.deny ?? []))
        } else if let filter = spec.ipFilter {
            func cidrs(_ list: [String]?, _ key: String) -> [CIDR] {
                (list ?? []).enumerated().compactMap { index, text in
                    guard let cidr = CIDR(text) else {
                        problem(path / "ipFilter" / key / index, "\"\(text)\" is not an address or CIDR such as 10.0.0.0/8 or 2001:db8::/32")
                        return nil
                    }
                    return cidr
                }
            }
            let allow = cidrs(filter.allow, "allow")
            let deny = cidrs(filter.deny, "deny")
            if filter.allow == nil && filter.deny == nil { problem(path / "ipFilter", "set allow or deny") }
            policy = .ipFilter(IPFilterPolicy(allow: allow, deny: deny))
        } else if let cors = spec.cors {
            let origins = cors.origins ?? []
            if origins.isEmpty { problem(path / "cors" / "origins", "list the allowed origins, e.g. [https://app.example.com], or [\"*\"]") }
            policy = .cors(
                CORSRules(
                    origins: origins, methods: cors.methods ?? ["GET", "HEAD", "POST"], headers: cors.headers ?? [],
                    exposedHeaders: cors.exposedHeaders ?? [], credentials: cors.credentials ?? false, maxAge: cors.maxAge ?? 600))
        } else if let validate = spec.validate {
            var schema: JSONSchema?
            var text = validate.jsonSchema
            if let file = validate.jsonSchemaFile {
                text = try? String(contentsOfFile: resolve(file), encoding: .utf8)
                if text == nil { problem(path / "validate" / "jsonSchemaFile", "cannot read \(resolve(file))") }
            }
            if let text {
                do { schema = try JSONSchema(json: Data(text.utf8)) } catch {
                    problem(path / "validate" / (validate.jsonSchemaFile == nil ? "jsonSchema" : "jsonSchemaFile"), "\(error)")
                }
            }
            policy = .validate(
                ValidationPolicy(
                    methods: (validate.methods ?? []).map { $0.uppercased() }, requiredHeaders: (validate.requiredHeaders ?? []).map { $0.lowercased() },
                    requiredQuery: validate.requiredQuery ?? [], contentTypes: (validate.contentTypes ?? []).map { $0.lowercased() },
                    maxBodySize: validate.maxBodySize?.bytes ?? (schema == nil ? nil : 1 << 20), jsonSchema: schema))
        } else if let transform = spec.transform {
            policy = .transform(compileTransform(transform, at: path / "transform"))
        } else if let redirect = spec.redirect {
            let status = redirect.status ?? 308
            if ![301, 302, 303, 307, 308].contains(status) { problem(path / "redirect" / "status", "must be 301, 302, 303, 307 or 308") }
            guard let location = redirect.location, !location.isEmpty else {
                problem(path / "redirect" / "location", "missing required key \"location\"")
                return nil
            }
            policy = .redirect(location: location, status: status)
        } else if let respond = spec.respond {
            let status = respond.status ?? 200
            if !(200...599).contains(status) { problem(path / "respond" / "status", "must be between 200 and 599") }
            policy = .respond(status: status, body: respond.body ?? "", contentType: respond.contentType ?? "text/plain; charset=utf-8")
        } else {
            return nil
        }
        return issues.count == before ? policy : nil
    }

    private mutating func compileAPIKey(_ spec: APIKeySpec, at path: SpecPath) -> APIKeyPolicy {
        var consumers: [(APIKeys.Consumer, [String])] = []
        for (index, consumer) in (spec.consumers ?? []).enumerated() {
            guard let name = consumer.name, !name.isEmpty else {
                problem(path / "consumers" / index / "name", "missing required key \"name\"")
                continue
            }
            let digests = consumer.keySHA256 ?? []
            for (position, digest) in digests.enumerated()
            where digest.count != 64 || !digest.allSatisfy(\.isHexDigit) {
                problem(path / "consumers" / index / "keySHA256" / position, "must be a hex SHA-256 digest: printf %s KEY | sha256sum")
            }
            consumers.append((APIKeys.Consumer(name: name, groups: consumer.groups ?? []), digests))
        }
        if consumers.isEmpty { problem(path / "consumers", "list at least one consumer with keySHA256") }
        let source: JWTPolicy.TokenSource
        switch (spec.from?.header, spec.from?.query) {
        case (nil, nil): source = .header("x-api-key")
        case (let header?, nil): source = .header(header.lowercased())
        case (nil, let query?): source = .query(query)
        default:
            problem(path / "from", "set one of header or query")
            source = .header("x-api-key")
        }
        let forward = spec.forwardAs ?? "X-Consumer"
        if !Self.isToken(forward) { problem(path / "forwardAs", "\"\(forward)\" is not a valid header name") }
        return APIKeyPolicy(keys: APIKeys(consumers), source: source, forwardAs: forward.lowercased())
    }

    private mutating func compileTransform(_ spec: TransformSpec, at path: SpecPath) -> TransformPolicy {
        if let prefix = spec.stripPrefix, !prefix.hasPrefix("/") || prefix.count < 2 {
            problem(path / "stripPrefix", "must be a path prefix such as /api")
        }
        var rewrite: (RewritePattern, String)?
        if let spec = spec.rewrite {
            if let source = spec.regex, let replacement = spec.replacement {
                do { rewrite = (try RewritePattern(source), replacement) } catch {
                    problem(path / "rewrite" / "regex", "invalid regular expression: \(error)")
                }
            } else {
                problem(path / "rewrite", "write {regex: \"^/v1/(.*)$\", replacement: \"/$1\"}")
            }
        }
        return TransformPolicy(
            stripPrefix: spec.stripPrefix.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }, rewrite: rewrite,
            requestHeaders: compileEdits(spec.requestHeaders, at: path / "requestHeaders"),
            responseHeaders: compileEdits(spec.responseHeaders, at: path / "responseHeaders"))
    }

    private mutating func compileEdits(_ spec: HeaderEditsSpec?, at path: SpecPath) -> HeaderEdits {
        guard let spec else { return HeaderEdits() }
        func pairs(_ list: [ClaimHeaderValueSpec]?, _ key: String) -> [(String, String)] {
            (list ?? []).enumerated().compactMap { index, item in
                guard let name = item.name, Self.isToken(name), let value = item.value else {
                    problem(path / key / index, "write {name: X-Header, value: text}")
                    return nil
                }
                return (name, value)
            }
        }
        return HeaderEdits(add: pairs(spec.add, "add"), set: pairs(spec.set, "set"), remove: (spec.remove ?? []).map { $0.lowercased() })
    }
}
