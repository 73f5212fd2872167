import Foundation
import GantryConfig

/// The running configuration, as the admin API, `gantry get config` and the dashboard show it.
public struct ConfigStatus: Sendable, Codable {
    /// Counts up with each configuration applied; 1 is the one gantry started with.
    public var generation: Int
    /// The SHA-256 of the running file's text.
    public var hash: String
    /// The file it came from (`built-in example` for the example).
    public var source: String
    public var appliedAt: Date
    /// What applied it: `start`, `file` (the file changed), `signal` (SIGHUP) or `apply`.
    public var trigger: String
    /// What the last change did.
    public var changes: [ConfigDiff.Change]
    /// Keys that changed but take effect when gantry restarts.
    public var needsRestart: [ConfigDiff.Restart]
    /// Attempts by result: `applied`, `unchanged`, `rejected`.
    public var reloads: [String: Int]
    public var lastRejection: Rejection?

    public struct Rejection: Sendable, Codable {
        public var time: Date
        public var source: String
        public var trigger: String
        /// As `gantry validate` prints them: `file:line:column: key.path: message`.
        public var issues: [String]

        public init(time: Date, source: String, trigger: String, issues: [String]) {
            self.time = time
            self.source = source
            self.trigger = trigger
            self.issues = issues
        }
    }

    public init(
        generation: Int, hash: String, source: String, appliedAt: Date, trigger: String, changes: [ConfigDiff.Change] = [],
        needsRestart: [ConfigDiff.Restart] = [], reloads: [String: Int] = [:], lastRejection: Rejection? = nil
    ) {
        self.generation = generation
        self.hash = hash
        self.source = source
        self.appliedAt = appliedAt
        self.trigger = trigger
        self.changes = changes
        self.needsRestart = needsRestart
        self.reloads = reloads
        self.lastRejection = lastRejection
    }
}

/// A file sent to a running gantry (`gantry apply`, `gantry diff`).
public struct ApplyRequest: Sendable, Codable {
    /// Where the file is: relative paths in it (key files, schemas) are resolved beside it.
    public var path: String
    public var text: String
    /// Only say what would change.
    public var dryRun: Bool

    public init(path: String, text: String, dryRun: Bool) {
        self.path = path
        self.text = text
        self.dryRun = dryRun
    }
}

/// What a running gantry did with a file.
public struct ApplyOutcome: Sendable, Codable {
    public enum Result: String, Sendable, Codable {
        case applied, unchanged, rejected
        /// A dry run: nothing changed.
        case compared
    }

    public var result: Result
    /// The running generation afterwards.
    public var generation: Int
    public var diff: ConfigDiff?
    /// The file's problems, as `gantry validate` prints them.
    public var issues: [String]

    public init(result: Result, generation: Int, diff: ConfigDiff? = nil, issues: [String] = []) {
        self.result = result
        self.generation = generation
        self.diff = diff
        self.issues = issues
    }
}

/// The running configuration, for the admin API: what it is now, and changing it.
public protocol ConfigController: Sendable {
    /// The configuration requests arrive under now.
    var snapshot: RuntimeSnapshot { get }
    func status() async -> ConfigStatus
    func apply(_ request: ApplyRequest) async -> ApplyOutcome
}
