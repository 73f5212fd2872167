import GantryCore
import Yams

/// What applying one configuration over another changes, object by object: what
/// `gantry diff` prints and what the running gantry does. Objects are found by name (routes,
/// policies, services, listeners); within an object, each key that changed is shown with its
/// old and new value, as written in the files. Keys that only take effect when gantry starts
/// are listed apart, with the reason. Pure: computed from the two loaded files.
public struct ConfigDiff: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable {
        case route, routeOrder = "route order", policy, service, endpoints, pods, replicas, autoscaling, listener
        case limits, dns, accessLog, tracing, runtime
    }

    public enum Action: String, Sendable, Codable {
        case added, removed, changed
    }

    public struct Change: Sendable, Codable, Equatable {
        public let kind: Kind
        public let name: String
        public let action: Action
        /// `key: old → new` for each key that changed inside the object.
        public let details: [String]
        /// What applying the change does besides the change itself.
        public let effect: String?
    }

    /// A key whose change waits for gantry's next start.
    public struct Restart: Sendable, Codable, Equatable {
        public let key: String
        public let from: String
        public let to: String
        public let reason: String
    }

    public let changes: [Change]
    public let needsRestart: [Restart]

    /// No change at all.
    public static let none = ConfigDiff(changes: [], needsRestart: [])

    public var isEmpty: Bool { changes.isEmpty && needsRestart.isEmpty }

    public func changes(of kind: Kind) -> [Change] { changes.filter { $0.kind == kind } }

    /// The names of the objects of `kind` that `action` applies to.
    public func names(_ kind: Kind, _ action: Action) -> Set<String> {
        Set(changes.filter { $0.kind == kind && $0.action == action }.map(\.name))
    }

    /// As `gantry diff` prints it: `+` added, `-` removed, `~` changed, `!` waits for a restart.
    public var text: String {
        if isEmpty { return "no changes\n" }
        var lines: [String] = []
        for change in changes {
            let sign = change.action == .added ? "+" : change.action == .removed ? "-" : "~"
            let name = change.name.isEmpty ? "" : " \(change.name)"
            lines.append("\(sign) \(change.kind.rawValue)\(name) \(change.action.rawValue)" + (change.effect.map { ": \($0)" } ?? ""))
            lines += change.details.map { "    \($0)" }
        }
        for restart in needsRestart {
            lines.append("! \(restart.key): \(restart.from) → \(restart.to) takes effect when gantry restarts (\(restart.reason))")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension ConfigDiff {
    /// The changes from `old` to `new`.
    public init(from old: LoadedConfig, to new: LoadedConfig) {
        var changes: [Change] = []
        // Secrets never reach a diff, which `gantry diff`, events and the admin API show.
        let before = old.document.maskingSecrets()
        let after = new.document.maskingSecrets()

        // Routes, in the order they match.
        let oldRoutes = Self.named(before.at("gateway", "routes"), names: old.snapshot.routeNames)
        let newRoutes = Self.named(after.at("gateway", "routes"), names: new.snapshot.routeNames)
        changes += Self.compare(oldRoutes, newRoutes, kind: .route)
        let oldNames = Set(oldRoutes.map(\.name))
        let newNames = Set(newRoutes.map(\.name))
        let kept = oldRoutes.map(\.name).filter(newNames.contains)
        let keptAfter = newRoutes.map(\.name).filter(oldNames.contains)
        if kept != keptAfter {
            changes.append(Change(kind: .routeOrder, name: "", action: .changed, details: ["\(kept.joined(separator: ", ")) → \(keptAfter.joined(separator: ", "))"], effect: nil))
        }

        // Policies: the same when their identity is (their entry and the files they read).
        let oldPolicies = Dictionary(old.snapshot.policies.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let newPolicies = Set(new.snapshot.policies.map(\.name))
        let oldPolicyNodes = Self.entries(in: before.at("gateway", "policies"))
        let newPolicyNodes = Self.entries(in: after.at("gateway", "policies"))
        for policy in new.snapshot.policies {
            guard let previous = oldPolicies[policy.name] else {
                changes.append(Change(kind: .policy, name: policy.name, action: .added, details: [], effect: nil))
                continue
            }
            guard previous.identity != policy.identity else { continue }
            var details = Self.differences(oldPolicyNodes[policy.name], newPolicyNodes[policy.name])
            if details.isEmpty { details = ["a file it reads changed"] }
            let stateful = !(policy.makeSharedState() is NoPolicyState) || !(policy.makeLoopState() is NoPolicyState)
            changes.append(Change(kind: .policy, name: policy.name, action: .changed, details: details, effect: stateful ? "its state starts afresh" : nil))
        }
        for policy in old.snapshot.policies where !newPolicies.contains(policy.name) {
            changes.append(Change(kind: .policy, name: policy.name, action: .removed, details: [], effect: nil))
        }

        // Services, in parts: what rolls pods, what scales them, what the autoscaler reads.
        let oldServices = Self.named(before.at("services"), names: old.snapshot.services.map(\.name))
        let newServices = Self.named(after.at("services"), names: new.snapshot.services.map(\.name))
        let oldServiceNodes = Dictionary(oldServices.map { ($0.name, $0.node) }, uniquingKeysWith: { first, _ in first })
        let newServiceNames = Set(newServices.map(\.name))
        for entry in newServices {
            guard let previous = oldServiceNodes[entry.name] else {
                changes.append(Change(kind: .service, name: entry.name, action: .added, details: [], effect: "its pods start"))
                continue
            }
            changes += Self.serviceChanges(entry.name, from: previous, to: entry.node, new: new.snapshot)
        }
        for entry in oldServices where !newServiceNames.contains(entry.name) {
            changes.append(
                Change(kind: .service, name: entry.name, action: .removed, details: [], effect: "requests in flight finish, then its pods stop"))
        }

        // The load balancer.
        let oldListeners = Self.named(before.at("loadBalancer", "listeners"), names: old.snapshot.listeners.map(\.name))
        let newListeners = Self.named(after.at("loadBalancer", "listeners"), names: new.snapshot.listeners.map(\.name))
        changes += Self.compare(oldListeners, newListeners, kind: .listener, changedEffect: "new connections only; open ones keep theirs")
        let limits = Self.differences(before.at("loadBalancer", "limits"), after.at("loadBalancer", "limits"), at: "limits")
            + Self.differences(before.at("loadBalancer", "timeouts"), after.at("loadBalancer", "timeouts"), at: "timeouts")
        if !limits.isEmpty { changes.append(Change(kind: .limits, name: "", action: .changed, details: limits, effect: "new connections and requests")) }

        // DNS, logs, traces, run-time settings.
        let dns = Self.differences(before.at("dns")?.without("listen"), after.at("dns")?.without("listen"), at: "dns")
        if !dns.isEmpty { changes.append(Change(kind: .dns, name: "", action: .changed, details: dns, effect: nil)) }
        for (kind, key) in [(Kind.accessLog, "accessLog"), (.tracing, "tracing")] {
            let details = Self.differences(before.at(key), after.at(key), at: key)
            if !details.isEmpty { changes.append(Change(kind: kind, name: "", action: .changed, details: details, effect: nil)) }
        }
        let grace = Self.differences(before.at("runtime", "shutdownGracePeriod"), after.at("runtime", "shutdownGracePeriod"), at: "runtime.shutdownGracePeriod")
        if !grace.isEmpty { changes.append(Change(kind: .runtime, name: "", action: .changed, details: grace, effect: nil)) }

        var restarts: [Restart] = []
        let fixed: [(path: [String], reason: String)] = [
            (["runtime", "workers"], "the event loops are made when gantry starts"),
            (["runtime", "stateDirectory"], "pods' logs, the process ledger and the local CA live there"),
            (["admin"], "changes reach gantry through the admin API"),
            (["dns", "listen"], "the DNS server's sockets are bound when gantry starts"),
        ]
        if (before.at("dns") == nil) != (after.at("dns") == nil) {
            restarts.append(
                Restart(
                    key: "dns", from: before.at("dns") == nil ? "(none)" : "(a DNS server)", to: after.at("dns") == nil ? "(none)" : "(a DNS server)",
                    reason: "the DNS server is started when gantry starts"))
        }
        for (path, reason) in fixed where !(path == ["dns", "listen"] && (before.at("dns") == nil || after.at("dns") == nil)) {
            let from = before.at(path).map(\.flowText) ?? "(default)"
            let to = after.at(path).map(\.flowText) ?? "(default)"
            if from != to { restarts.append(Restart(key: path.joined(separator: "."), from: from, to: to, reason: reason)) }
        }
        self.init(changes: changes, needsRestart: restarts)
    }

    private static func serviceChanges(_ name: String, from old: Node, to new: Node, new snapshot: RuntimeSnapshot) -> [Change] {
        var changes: [Change] = []
        // `image` is only read by `gantry export kubernetes`: here it changes nothing.
        let template = differences(
            old.at("pods")?.without("replicas", "strategy", "image"), new.at("pods")?.without("replicas", "strategy", "image"), at: "pods")
        if !template.isEmpty {
            let strategy = snapshot.service(named: name)?.pods?.rollout
            changes.append(
                Change(
                    kind: .pods, name: name, action: .changed, details: template,
                    effect: "every pod is replaced, new before old" + (strategy.map { " (maxSurge \($0.maxSurge), maxUnavailable \($0.maxUnavailable))" } ?? "")))
        }
        let replicas = differences(old.at("pods", "replicas"), new.at("pods", "replicas"), at: "pods.replicas")
        if !replicas.isEmpty { changes.append(Change(kind: .replicas, name: name, action: .changed, details: replicas, effect: nil)) }
        let autoscaling = differences(old.at("autoscaling"), new.at("autoscaling"), at: "autoscaling")
        if !autoscaling.isEmpty {
            changes.append(Change(kind: .autoscaling, name: name, action: .changed, details: autoscaling, effect: "from the autoscaler's next sync"))
        }
        let endpoints = differences(old.at("endpoints"), new.at("endpoints"), at: "endpoints")
        if !endpoints.isEmpty { changes.append(Change(kind: .endpoints, name: name, action: .changed, details: endpoints, effect: nil)) }
        let settings = differences(old.without("pods", "autoscaling", "endpoints"), new.without("pods", "autoscaling", "endpoints"))
            + differences(old.at("pods", "strategy"), new.at("pods", "strategy"), at: "pods.strategy")
        if !settings.isEmpty { changes.append(Change(kind: .service, name: name, action: .changed, details: settings, effect: nil)) }
        return changes
    }

    // MARK: Nodes

    /// The entries of a list, with the name each compiled to (a route's default name, say).
    private static func named(_ list: Node?, names: [String]) -> [(name: String, node: Node)] {
        guard let entries = list?.sequence.map(Array.init), entries.count == names.count else { return [] }
        var seen: [String: Int] = [:]
        return zip(names, entries).map { name, node in
            seen[name, default: 0] += 1
            return (seen[name]! > 1 ? "\(name) #\(seen[name]!)" : name, node)
        }
    }

    /// A list's entries by their `name`.
    private static func entries(in list: Node?) -> [String: Node] {
        var named: [String: Node] = [:]
        for node in list?.sequence ?? [] {
            if let name = node.at("name")?.scalar?.string, named[name] == nil { named[name] = node }
        }
        return named
    }

    private static func compare(_ old: [(name: String, node: Node)], _ new: [(name: String, node: Node)], kind: Kind, changedEffect: String? = nil)
        -> [Change]
    {
        var changes: [Change] = []
        let previous = Dictionary(old.map { ($0.name, $0.node) }, uniquingKeysWith: { first, _ in first })
        let names = Set(new.map(\.name))
        for entry in new {
            guard let before = previous[entry.name] else {
                changes.append(Change(kind: kind, name: entry.name, action: .added, details: [], effect: nil))
                continue
            }
            let details = differences(before, entry.node)
            if !details.isEmpty { changes.append(Change(kind: kind, name: entry.name, action: .changed, details: details, effect: changedEffect)) }
        }
        for entry in old where !names.contains(entry.name) {
            changes.append(Change(kind: kind, name: entry.name, action: .removed, details: [], effect: nil))
        }
        return changes
    }

    /// Each key that differs between two nodes, as `path: old → new`; lists of different
    /// lengths differ as a whole.
    static func differences(_ old: Node?, _ new: Node?, at path: String = "") -> [String] {
        let label = path.isEmpty ? "" : "\(path): "
        switch (old, new) {
        case (nil, nil):
            return []
        case (nil, let added?):
            return ["\(label)added \(added.flowText)"]
        case (let removed?, nil):
            return ["\(label)removed (was \(removed.flowText))"]
        case (.mapping(let before)?, .mapping(let after)?):
            var keys: [String] = []
            for key in before.keys.compactMap(\.string) + after.keys.compactMap(\.string) where !keys.contains(key) { keys.append(key) }
            return keys.flatMap { key in
                differences(old?.at(key), new?.at(key), at: path.isEmpty ? key : "\(path).\(key)")
            }
        case (.sequence(let before)?, .sequence(let after)?) where before.count == after.count:
            return zip(before, after).enumerated().flatMap { index, pair in differences(pair.0, pair.1, at: "\(path)[\(index)]") }
        case (let before?, let after?):
            return before.canonicalText == after.canonicalText ? [] : ["\(label)\(before.flowText) → \(after.flowText)"]
        }
    }
}

extension Node {
    /// The node at a path of mapping keys, or nil.
    func at(_ keys: String...) -> Node? { at(keys) }

    func at(_ keys: [String]) -> Node? {
        var node: Node? = self
        for key in keys {
            guard case .mapping(let mapping)? = node else { return nil }
            node = mapping.first { $0.key.string == key }?.value
        }
        return node
    }

    /// Keys whose values are secrets: the admin API's token, an introspection client's secret.
    static let secretKeys: Set<String> = ["token", "clientSecret"]

    /// The node with every secret value replaced by `(secret #abcdef)`: a short digest, so that
    /// a changed secret still shows as a change, but not what it is.
    func maskingSecrets() -> Node {
        switch self {
        case .mapping(let mapping):
            return .mapping(
                Node.Mapping(
                    mapping.map { key, value in
                        if let name = key.string, Self.secretKeys.contains(name), case .scalar(let scalar) = value {
                            return (key, Node(String("(secret #\(ContentDigest.sha256(scalar.string).prefix(6)))")))
                        }
                        return (key, value.maskingSecrets())
                    }))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map { $0.maskingSecrets() }))
        default:
            return self
        }
    }

    /// A mapping without some of its keys.
    func without(_ keys: String...) -> Node {
        guard case .mapping(let mapping) = self else { return self }
        return .mapping(Node.Mapping(mapping.filter { !keys.contains($0.key.string ?? "") }))
    }

    /// The node as a YAML flow: `{requests: 5, per: 1s}`, `[a, b]`.
    var flowText: String {
        switch self {
        case .scalar(let scalar):
            let text = scalar.string
            let special = ",{}[]#&*!|>'\"%@`"
            let plain = !text.isEmpty && !text.contains(where: special.contains) && !text.contains(": ") && text.first != " " && text.last != " "
            return plain ? text : JSONText.quoted(text)
        case .mapping(let mapping):
            return "{" + mapping.map { "\($0.key.flowText): \($0.value.flowText)" }.joined(separator: ", ") + "}"
        case .sequence(let sequence):
            return "[" + sequence.map(\.flowText).joined(separator: ", ") + "]"
        case .alias(let alias):
            return "*" + alias.anchor.rawValue
        }
    }
}
