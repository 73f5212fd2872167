import Foundation
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// What makes a running gantry read its file again: the file changing on disk, and SIGHUP.
///
/// The file is looked at four times a second (its inode, size and modification time): a
/// changed look is applied once the file has stayed the same for one more look, so that an
/// editor's steps (a truncate and a write, a write to a new file and a rename over the old one)
/// are applied once, whole. A file that is briefly missing (between an unlink and a rename) is
/// waited for.
struct ConfigWatcher: Sendable {
    let path: String
    let live: LiveConfig

    static let interval = Duration.milliseconds(250)

    private struct Look: Equatable {
        let inode: UInt64
        let size: Int64
        let modified: Int64
    }

    func run() async {
        var applied = look()
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.interval)
            var seen = look()
            guard seen != applied else { continue }
            // Settled once two looks in a row agree.
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.interval)
                let again = look()
                if again == seen { break }
                seen = again
            }
            guard seen != nil else { continue }
            applied = seen
            await live.reload(path, trigger: "file")
        }
    }

    private func look() -> Look? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Look(
            inode: UInt64(info.st_ino), size: Int64(info.st_size),
            modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }

    /// Applies the file again on every SIGHUP, as nginx and HAProxy reload.
    static func reloadOnHangUp(_ live: LiveConfig) async {
        for await _ in await UnixSignalsSequence(trapping: .sighup) {
            await live.reload(trigger: "signal")
        }
    }
}
