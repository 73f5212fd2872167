import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Which pod processes each running gantry owns, in `<stateDirectory>/run/<gantry pid>.pods`:
/// the gantry's own start time, then one line per pod process group (its leader's PID and start
/// time). A gantry that dies without stopping its pods (SIGKILL, a crash) leaves its file behind,
/// and the next `gantry up` on the same state directory stops those pods before starting its
/// own, so they neither linger nor hold the addresses the new pods need. Start times (from
/// /proc) make sure a PID reused by some other process is never signalled.
struct ProcessLedger: Sendable {
    let directory: String
    private let path: String
    private let ownStart: UInt64

    init(stateDirectory: String) {
        directory = stateDirectory + "/run"
        path = directory + "/\(getpid()).pods"
        ownStart = Self.startTime(of: getpid()) ?? 0
    }

    /// Writes the file anew with the process groups running now.
    func record(_ groups: [pid_t]) {
        var text = "gantry \(ownStart)\n"
        for pid in groups.sorted() {
            if let start = Self.startTime(of: pid) { text += "\(pid) \(start)\n" }
        }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Every pod stopped: nothing of this gantry's is left.
    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The process groups that gantry processes which are no longer running left behind, each
    /// still led by the process that was recorded. Their files are removed.
    func leftovers() -> [pid_t] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var groups: [pid_t] = []
        for file in files where file.hasSuffix(".pods") {
            guard let owner = pid_t(file.dropLast(".pods".count)), owner != getpid(),
                let text = try? String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            else { continue }
            let lines = text.split(separator: "\n").map { $0.split(separator: " ") }
            guard let first = lines.first, first.count == 2, first[0] == "gantry", let ownerStart = UInt64(first[1]) else { continue }
            // Its gantry still runs (the same process, not a reused PID): those pods are in use.
            if Self.startTime(of: owner) == ownerStart { continue }
            for line in lines.dropFirst() where line.count == 2 {
                guard let pid = pid_t(line[0]), let start = UInt64(line[1]), Self.startTime(of: pid) == start else { continue }
                groups.append(pid)
            }
            try? FileManager.default.removeItem(atPath: directory + "/" + file)
        }
        return groups
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
