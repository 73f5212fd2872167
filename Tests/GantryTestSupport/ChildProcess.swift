import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process, started with `posix_spawn` here rather than with Foundation's `Process`:
/// on Linux, `Process.run()` reads `/proc/self/fd` entries past their end and crashes now and
/// then when the test process has many descriptors open (swift-corelibs-foundation #5472,
/// fixed after the 6.3.1 toolchain these tests run on). The surface is the part of `Process`
/// the tests use. The child gets default signal handling (the test process ignores SIGTERM),
/// no descriptor of the test process beyond its three standard ones, and `/dev/null` as input.
public final class ChildProcess: @unchecked Sendable {
    public var executableURL: URL?
    public var arguments: [String] = []
    public var currentDirectoryURL: URL?
    /// nil: the test process's.
    public var environment: [String: String]?
    /// A `FileHandle` or a `Pipe`; nil: the test process's.
    public var standardOutput: Any?
    public var standardError: Any?

    public private(set) var processIdentifier: Int32 = 0
    private let lock = NSLock()
    private var status: Int32?

    public init() {}

    public func run() throws {
        guard let executable = executableURL?.path else { throw ChildProcessError(description: "no executable") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (stream, target) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
            if let fd = Self.descriptor(of: target) { posix_spawn_file_actions_adddup2(&actions, fd, stream) }
        }
        _ = Self.addCloseFrom(&actions, 3)
        if let directory = currentDirectoryURL?.path { _ = Self.addChdir(&actions, directory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let variables = environment ?? ProcessInfo.processInfo.environment
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else { throw ChildProcessError(description: "posix_spawn \(executable): \(String(cString: strerror(result)))") }
        processIdentifier = pid
        // The child has its copy of a pipe's writing end; the parent's would keep it open.
        for target in [standardOutput, standardError] {
            if let pipe = target as? Pipe { try? pipe.fileHandleForWriting.close() }
        }
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` and `…_addchdir_np` (2.34, 2.29),
    /// which the Glibc module leaves out (they need `_GNU_SOURCE`): found by name.
    private static let addCloseFrom: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32 = {
        unsafeBitCast(dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np")!, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()
    private static let addChdir: @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32 = {
        unsafeBitCast(dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addchdir_np")!, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self)
    }()

    private static func descriptor(of target: Any?) -> Int32? {
        switch target {
        case let handle as FileHandle: handle.fileDescriptor
        case let pipe as Pipe: pipe.fileHandleForWriting.fileDescriptor
        default: nil
        }
    }

    /// The child has exited or been killed (and is reaped).
    public var hasEnded: Bool {
        lock.lock()
        defer { lock.unlock() }
        if status != nil { return true }
        guard processIdentifier > 0 else { return false }
        var raw: Int32 = 0
        guard waitpid(processIdentifier, &raw, WNOHANG) == processIdentifier else { return false }
        // Its exit code, or the signal that ended it.
        status = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : raw & 0x7F
        return true
    }

    public var isRunning: Bool { !hasEnded }

    /// Its exit status, or the signal that ended it; -1 while it runs.
    public var endStatus: Int32 {
        guard hasEnded else { return -1 }
        lock.lock()
        defer { lock.unlock() }
        return status ?? -1
    }

    public var terminationStatus: Int32 { endStatus }

    public func terminate() {
        guard processIdentifier > 0, !hasEnded else { return }
        kill(processIdentifier, SIGTERM)
    }

    /// Polls until the child has ended (SIGKILL it first to be sure of that), for at most a minute.
    public func waitForEnd() {
        let deadline = ContinuousClock.now + .seconds(60)
        while !hasEnded, ContinuousClock.now < deadline { usleep(10_000) }
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public let description: String
}
