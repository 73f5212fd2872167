import GantryCore

extension SpecCompiler {
    /// Compiles `gateway.policies`, each by its kind; returns them and their indices by name.
    mutating func compilePolicies(_ specs: [PolicySpec], services: [ServiceSettings], at path: SpecPath)
        -> ([CompiledPolicy], [String: Int])
    {
        var policies: [CompiledPolicy] = []
        var byName: [String: Int] = [:]
        let serviceNames = services.map(\.name)
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
            guard let body = spec.body else { continue }  // not exactly one kind: reported by the decoder
            var compilation = PolicyCompilation(path: here / spec.kind, serviceNames: serviceNames, sourceFile: sourceFile)
            let compiled = body.compile(name: name, in: &compilation)
            for (path, message) in compilation.issues { problem(path, message) }
            guard let compiled, !compilation.hasProblems else { continue }
            byName[name] = policies.count
            let definition = ([spec.definition] + compilation.filesRead).joined(separator: "\n")
            policies.append(CompiledPolicy(name: name, identity: PolicyIdentity(name: name, definition: definition), policy: compiled))
        }
        return (policies, byName)
    }

    /// A route's `policies:` list as indices, checking that each policy comes after those that
    /// establish what it needs (a rate limit keyed by a claim after a jwt or oauth2 policy).
    mutating func compileRoutePolicies(_ names: [String], policies: [CompiledPolicy], byName: [String: Int], at path: SpecPath) -> [Int] {
        var result: [Int] = []
        var established: CallerFacts = []
        for (position, name) in names.enumerated() {
            guard let index = byName[name] else {
                problem(path / position, "unknown policy \"\(name)\"" + Suggestion.hint(for: name, among: byName.keys))
                continue
            }
            let policy = policies[index].policy
            if let (needs, because) = policy.requires, !established.isSuperset(of: needs) {
                let providers = GatewayPolicies.kinds.filter { $0.establishes.isSuperset(of: needs) }.map { $0.kind }
                let list = providers.joined(separator: " or ")
                let article = list.first.map { "aeiou".contains($0) } == true ? "an" : "a"
                problem(path / position, "\(policy.kind) \"\(name)\" \(because): list \(article) \(list) policy before it")
            }
            established.formUnion(type(of: policy).establishes)
            result.append(index)
        }
        return result
    }

    /// A path from the file, relative to the file's directory.
    func resolve(_ file: String) -> String {
        Self.resolve(file, besides: sourceFile)
    }

    static func resolve(_ file: String, besides sourceFile: String) -> String {
        guard !file.hasPrefix("/"), let slash = sourceFile.lastIndex(of: "/") else { return file }
        return String(sourceFile[..<slash]) + "/" + file
    }
}
