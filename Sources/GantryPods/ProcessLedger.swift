import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which pod processes each running gantry owns, in `<stateDirectory>/run/<gantry pid>.pods`:
/// the gantry's own start time and, for each pod, its process group leader (PID and start
/// time) and what the next gantry needs to take it over: service, name, address, and the
/// fingerprint of what it was started from. A gantry that dies without stopping its pods
/// (SIGKILL, a crash) leaves its file behind; the next `gantry up` on the same state directory
/// adopts those pods, as the kubelet adopts the containers it finds after a restart. Start
/// times (from /proc) make sure a PID reused by some other process is never taken for a pod.
struct ProcessLedger: Sendable {
    /// One pod process.
    struct Entry: Sendable, Codable, Equatable {
        let pid: pid_t
        /// Clock ticks since boot when the process started: with the PID, the process's identity.
        let start: UInt64
        let service: String
        let name: String
        let address: String
        let port: Int
        /// ``PodTemplate/fingerprint(environment:)`` of what the process was started from.
        let fingerprint: String
        let restarts: Int
        /// Passed its startup probe, and ready, when a running gantry hands it over (a file
        /// left by a dead gantry says neither: its pods are probed again).
        var started = false
        var ready = false

        /// Whether this very process still runs.
        var isRunning: Bool { ProcessLedger.startTime(of: pid) == start }
    }

    /// What a file says: its gantry, and its pods. Files written by a gantry that recorded only
    /// process groups give entries without a service (they can be stopped, not adopted).
    private struct Contents: Codable {
        let gantry: UInt64
        let pods: [Entry]
    }

    let directory: String
    private let path: String
    private let ownStart: UInt64

    init(stateDirectory: String) {
        directory = stateDirectory + "/run"
        path = directory + "/\(getpid()).pods"
        ownStart = Self.startTime(of: getpid()) ?? 0
    }

    /// Writes the file anew with the pods running now.
    func record(_ pods: [Entry]) {
        let contents = Contents(gantry: ownStart, pods: pods.sorted { $0.pid < $1.pid })
        guard let data = try? JSONEncoder().encode(contents) else { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Every pod stopped, or handed over: nothing of this gantry's is left.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// What gantry processes which are no longer running left behind: pods still led by the
    /// process that was recorded, and process groups recorded by an older gantry (PIDs only).
    /// Their files are removed: whoever reads them owns those processes now.
    func leftovers() -> (pods: [Entry], groups: [pid_t]) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var pods: [Entry] = []
        var groups: [pid_t] = []
        for file in files where file.hasSuffix(".pods") {
            guard let owner = pid_t(file.dropLast(".pods".count)), owner != getpid(),
                let data = FileManager.default.contents(atPath: directory + "/" + file)
            else { continue }
            if let contents = try? JSONDecoder().decode(Contents.self, from: data) {
                // Its gantry still runs (the same process, not a reused PID): those pods are in use.
                if Self.startTime(of: owner) == contents.gantry { continue }
                pods += contents.pods.filter(\.isRunning)
            } else {
                // "gantry START" then "PID START" lines.
                let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map { $0.split(separator: " ") }
                guard let first = lines.first, first.count == 2, first[0] == "gantry", let ownerStart = UInt64(first[1]) else { continue }
                if Self.startTime(of: owner) == ownerStart { continue }
                for line in lines.dropFirst() where line.count == 2 {
                    guard let pid = pid_t(line[0]), let start = UInt64(line[1]), Self.startTime(of: pid) == start else { continue }
                    groups.append(pid)
                }
            }
            try? FileManager.default.removeItem(atPath: directory + "/" + file)
        }
        return (pods, groups)
    }

    /// When a process started, in clock ticks since boot (field 22 of /proc/PID/stat); nil when
    /// it is gone or has exited and waits to be reaped.
    static func startTime(of pid: pid_t) -> UInt64? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let fields = ProcessGroupUsage.fieldsAfterName(stat), fields.count > 19, fields[0] != "Z", fields[0] != "X"
        else { return nil }
        // state(0) … starttime(19)
        return UInt64(fields[19])
    }
}
