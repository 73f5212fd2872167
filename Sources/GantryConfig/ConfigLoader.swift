import Foundation
import GantryCore
import Yams

/// A loaded gantry.yaml: its text, the spec as written and its compiled snapshot.
public struct LoadedConfig: Sendable {
    public let spec: GantrySpec
    public let snapshot: RuntimeSnapshot
    /// The file as read.
    public let text: String
    /// The text's SHA-256, in hex: what identifies this configuration.
    public let hash: String
    /// Loaded for `gantry up --kubernetes`: the endpoints of every service come from the cluster.
    public let endpointsFromCluster: Bool
    /// The file's YAML nodes, for comparing two configurations (``ConfigDiff``).
    var document: Node { nodes.root }
    private let nodes: Document

    init(spec: GantrySpec, snapshot: RuntimeSnapshot, text: String, document: Node, endpointsFromCluster: Bool) {
        self.endpointsFromCluster = endpointsFromCluster
        self.spec = spec
        self.snapshot = snapshot
        self.text = text
        self.hash = ContentDigest.sha256(text)
        self.nodes = Document(root: document)
    }

    /// Yams' nodes are values, but not marked `Sendable` (anchors are classes); these are never
    /// changed once the file is read.
    private struct Document: @unchecked Sendable {
        let root: Node
    }
}

/// gantry.yaml → YAML nodes → ``GantrySpec`` → checks → ``RuntimeSnapshot``, reporting every
/// problem with its file, line, column and key path.
public enum ConfigLoader {
    public static func load(
        file path: String, coreCount: Int = ProcessInfo.processInfo.activeProcessorCount, endpointsFromCluster: Bool = false
    ) -> Result<LoadedConfig, ConfigError>
    {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            return .failure(
                ConfigError(issues: [
                    ConfigIssue(file: path, path: SpecPath(), message: "cannot read the file: \(error.localizedDescription)")
                ]))
        }
        return load(yaml: text, file: path, coreCount: coreCount, endpointsFromCluster: endpointsFromCluster)
    }

    public static func load(
        yaml text: String, file: String, coreCount: Int = ProcessInfo.processInfo.activeProcessorCount, endpointsFromCluster: Bool = false
    ) -> Result<LoadedConfig, ConfigError>
    {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                return .failure(ConfigError(issues: [ConfigIssue(file: file, path: SpecPath(), message: "the file is empty")]))
            }
            root = node
        } catch let error as YamlError {
            return .failure(ConfigError(issues: [syntaxIssue(error, file: file)]))
        } catch {
            return .failure(ConfigError(issues: [ConfigIssue(file: file, path: SpecPath(), message: "\(error)")]))
        }

        let decoding = SpecDecoding(file: file)
        let spec = decoding.decode(GantrySpec.self, from: root)
        var issues = decoding.issues
        var snapshot: RuntimeSnapshot?
        if let spec {
            var compiler = SpecCompiler(sourceFile: file, coreCount: coreCount, endpointsFromCluster: endpointsFromCluster)
            snapshot = compiler.compile(spec)
            // Compile problems on fields that failed to decode would repeat what decoding said.
            let reported = Set(issues.map(\.path))
            for (path, message) in compiler.issues where !reported.contains(path) {
                issues.append(ConfigIssue(file: file, location: root.location(of: path), path: path, message: message))
            }
        }
        if let spec, let snapshot, issues.isEmpty {
            return .success(LoadedConfig(spec: spec, snapshot: snapshot, text: text, document: root, endpointsFromCluster: endpointsFromCluster))
        }
        issues.sort { ($0.location ?? SourceLocation(line: 0, column: 0)) < ($1.location ?? SourceLocation(line: 0, column: 0)) }
        return .failure(ConfigError(issues: issues))
    }

    private static func syntaxIssue(_ error: YamlError, file: String) -> ConfigIssue {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            let detail = [problem, context?.text].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            return ConfigIssue(
                file: file, location: SourceLocation(line: mark.line, column: mark.column), path: SpecPath(),
                message: "YAML syntax error: \(detail)")
        case .composer(let context, let problem, let mark, _):
            let detail = [problem, context?.text].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            return ConfigIssue(
                file: file, location: SourceLocation(line: mark.line, column: mark.column), path: SpecPath(),
                message: "YAML error: \(detail)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            return ConfigIssue(
                file: file, location: SourceLocation(line: context.mark.line, column: context.mark.column),
                path: SpecPath(), message: "duplicate key \(names) in this mapping")
        default:
            return ConfigIssue(file: file, path: SpecPath(), message: "YAML error: \(error)")
        }
    }
}

extension Node {
    /// Where a path points in the file: the node itself, or the deepest existing ancestor (the
    /// mapping a missing key belongs in).
    func location(of path: SpecPath) -> SourceLocation? {
        var node = self
        for component in path.components {
            switch (component, node) {
            case (.key(let key), .mapping(let mapping)):
                guard let pair = mapping.first(where: { $0.key.string == key }) else { return node.location }
                node = pair.value
            case (.index(let index), .sequence(let sequence)):
                guard index < sequence.count else { return node.location }
                node = sequence[index]
            default:
                return node.location
            }
        }
        return node.location
    }
}
