import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The built `gantry` binary, run as a child process the way a user runs it.
public final class GantryProcess: @unchecked Sendable {
    public let process = ChildProcess()
    public let stdoutPath: String
    public let stderrPath: String

    /// The `gantry` executable next to the test bundle (SwiftPM builds every product with the
    /// tests), or `$GANTRY_BINARY`.
    public static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["GANTRY_BINARY"] { return explicit }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("gantry").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return "gantry"
    }

    /// A fresh directory for one test's files (configs, logs, keys, child processes' output).
    /// All of a test process's are under one parent, removed when the process exits unless
    /// `GANTRY_KEEP_TEST_FILES` is set (to read what a failed test's processes wrote).
    public static func scratchDirectory() -> URL {
        let url = scratchRoot.appendingPathComponent(UUID().uuidString)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private static let scratchRoot: URL = {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("gantry-tests-\(getpid())")
        if ProcessInfo.processInfo.environment["GANTRY_KEEP_TEST_FILES"] == nil {
            atexit { try? FileManager.default.removeItem(at: FileManager.default.temporaryDirectory.appendingPathComponent("gantry-tests-\(getpid())")) }
        }
        return root
    }()

    /// Runs gantry with `arguments`, or another program (`executable`, found on the PATH).
    public init(_ arguments: [String], directory: URL, environment: [String: String] = [:], executable: String? = nil) throws {
        let words = arguments.prefix(2).map { $0.split(separator: "/").last.map(String.init) ?? $0 }
        let name = words.joined(separator: "-") + "-\(UUID().uuidString.prefix(8))"
        stdoutPath = directory.appendingPathComponent("\(name).out").path
        stderrPath = directory.appendingPathComponent("\(name).err").path
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable == nil ? Self.binary : "/usr/bin/env")
        process.arguments = executable.map { [$0] + arguments } ?? arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        try process.run()
    }

    public var pid: Int32 { process.processIdentifier }
    public var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The first port printed after `marker` (e.g. `listener http on http://127.0.0.1:`).
    public func waitForPort(after marker: String, in stream: KeyPath<GantryProcess, String> = \.stderr, timeout: Duration = .seconds(30))
        async -> Int?
    {
        var port: Int?
        _ = await eventually(timeout: timeout) {
            let text = self[keyPath: stream]
            guard let range = text.range(of: marker) else { return false }
            port = Int(text[range.upperBound...].prefix(while: \.isNumber))
            return port != nil
        }
        return port
    }

    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Waits for the process to exit; returns its status, or nil if it is still running.
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let exited = await eventually(timeout: timeout) { self.process.hasEnded }
        return exited ? process.endStatus : nil
    }

    /// Peak resident memory (VmHWM) in bytes, from /proc.
    public var peakResidentBytes: Int? { Self.procStatus(pid, "VmHWM") }
    public var residentBytes: Int? { Self.procStatus(pid, "VmRSS") }

    static func procStatus(_ pid: Int32, _ field: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
            let digits = line.split(separator: " ").dropFirst().first { Int($0) != nil }
            return digits.flatMap { Int($0) }.map { $0 * 1024 }
        }
        return nil
    }

    /// SIGTERM, so that gantry stops its pods, then SIGKILL if it has not exited in 20 s.
    public func stop() {
        guard !process.hasEnded else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while !process.hasEnded, ContinuousClock.now < deadline { usleep(10_000) }
        if !process.hasEnded { kill(pid, SIGKILL) }
        process.waitForEnd()
    }

    deinit {
        stop()
    }
}

/// Runs a command to completion (curl, dig …) and returns its exit status and output.
public func run(_ executable: String, _ arguments: [String], directory workingDirectory: URL? = nil, timeout: Duration = .seconds(120))
    async throws -> (status: Int32, output: String, error: String)
{
    let process = ChildProcess()
    if let workingDirectory { process.currentDirectoryURL = workingDirectory }
    process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/env")
    process.arguments = executable.hasPrefix("/") ? arguments : [executable] + arguments
    let directory = GantryProcess.scratchDirectory()
    let out = directory.appendingPathComponent("out").path
    let err = directory.appendingPathComponent("err").path
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    _ = FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = FileHandle(forWritingAtPath: err)
    try process.run()
    _ = await eventually(timeout: timeout) { process.hasEnded }
    if !process.hasEnded {
        // A tool past its time (a browser, say) may not heed SIGTERM: waiting for it then
        // would hang the test run rather than fail the test.
        process.terminate()
        if !(await eventually(timeout: .seconds(5)) { process.hasEnded }) { kill(process.processIdentifier, SIGKILL) }
    }
    process.waitForEnd()
    defer { try? FileManager.default.removeItem(at: directory) }
    return (
        process.endStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
        (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
    )
}
