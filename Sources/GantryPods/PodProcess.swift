import Foundation
import Subprocess

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Starting a pod's process and signalling it. A pod runs in a process group of its own, so
/// that a signal reaches whatever the pod started too (a shell's children, workers), and no
/// orphan outlives its pod.
enum PodProcess {
    struct Launch: Sendable {
        let executable: String
        let arguments: [String]
        let environment: [String: String]
        let workingDirectory: String?
        let logPath: String
    }

    enum Outcome: Sendable {
        case exited(code: Int32)
        case failedToStart(String)
        /// A process gantry took over ended: it is not gantry's child, so its exit status is
        /// not gantry's to read.
        case vanished
    }

    /// Waits for the end of a process gantry did not start (one taken over), which it cannot
    /// `wait` for: it looks every 100 ms, as the kubelet's relist does. `start` tells the
    /// process from another that got its PID since.
    static func waitForEnd(of pid: pid_t, start: UInt64) async -> Outcome {
        while ProcessLedger.startTime(of: pid) == start {
            try? await Task.sleep(for: .milliseconds(100))
        }
        signalGroup(pid, SIGKILL)  // whatever it left in its group goes with it
        return .vanished
    }

    /// Runs the process to its end. `started` receives its process ID (which is also its
    /// process group ID) as soon as it exists.
    static func run(_ launch: Launch, started: @Sendable (pid_t) async -> Void) async -> Outcome {
        let log: FileDescriptor
        do {
            log = try FileDescriptor.open(
                FilePath(launch.logPath), .writeOnly, options: [.append, .create], permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            return .failedToStart("cannot open the pod log \(launch.logPath): \(error)")
        }
        var options = PlatformOptions()
        options.processGroupID = 0  // a new group led by the pod's process
        var overrides: [Environment.Key: String?] = [:]
        for (name, value) in launch.environment { overrides[Environment.Key(stringLiteral: name)] = value }
        let executable: Executable = launch.executable.contains("/") ? .path(FilePath(launch.executable)) : .name(launch.executable)
        do {
            let result = try await Subprocess.run(
                executable, arguments: Arguments(launch.arguments), environment: .inherit.updating(overrides),
                workingDirectory: launch.workingDirectory.map { FilePath($0) }, platformOptions: options, input: .none,
                output: .fileDescriptor(log, closeAfterSpawningProcess: true), error: .combinedWithOutput
            ) { execution in
                await started(execution.processIdentifier.value)
            }
            // Whatever the pod left in its group goes with it.
            signalGroup(result.processIdentifier.value, SIGKILL)
            switch result.terminationStatus {
            case .exited(let code): return .exited(code: code)
            case .signaled(let signal): return .exited(code: 128 + signal)
            }
        } catch {
            try? log.close()
            return .failedToStart("\(error)")
        }
    }

    /// Sends `signal` to every process in the pod's group.
    @discardableResult
    static func signalGroup(_ groupID: pid_t, _ signal: Int32) -> Bool {
        guard groupID > 1 else { return false }
        return kill(-groupID, signal) == 0
    }

    /// The path of the running gantry binary, for pods whose command is `gantry`.
    static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
