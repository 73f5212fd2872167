import Foundation

/// CPU time and resident memory of whole process groups, read from /proc: a pod is a process
/// group, so this covers everything the pod started.
public enum ProcessGroupUsage {
    public struct Usage: Sendable, Hashable {
        /// User plus system time, in seconds.
        public var cpuSeconds: Double
        public var residentBytes: Int
    }

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Usage of each of `groups`, by process group ID.
    public static func read(groups: Set<Int32>) -> [Int32: Usage] {
        guard !groups.isEmpty, let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [:] }
        var result: [Int32: Usage] = [:]
        for entry in entries where entry.first?.isNumber == true {
            guard let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let fields = parse(stat), groups.contains(fields.group)
            else { continue }
            var usage = result[fields.group] ?? Usage(cpuSeconds: 0, residentBytes: 0)
            usage.cpuSeconds += Double(fields.ticks) / ticksPerSecond
            usage.residentBytes += fields.residentPages * pageSize
            result[fields.group] = usage
        }
        return result
    }

    /// The process group, CPU ticks (utime + stime) and resident pages from a `stat` line. The
    /// command name may contain spaces and parentheses, so fields are counted after its last `)`.
    static func parse(_ stat: String) -> (group: Int32, ticks: Int, residentPages: Int)? {
        // After the name: state(0) ppid(1) pgrp(2) … utime(11) stime(12) … rss(21)
        guard let fields = fieldsAfterName(stat), fields.count > 21, let group = Int32(fields[2]), let user = Int(fields[11]), let system = Int(fields[12]),
            let rss = Int(fields[21])
        else { return nil }
        return (group, user + system, rss)
    }

    /// The fields of a `stat` line after the command name, from the state on.
    static func fieldsAfterName(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }
}
