import Dispatch
import Foundation

enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name]
    }
}

/// Suspends until one of the signals arrives (for the small example servers).
enum SignalWaiter {
    static func wait(for signals: [Int32]) async throws {
        let sources = signals.map { DispatchSource.makeSignalSource(signal: $0, queue: .global()) }
        defer { sources.forEach { $0.cancel() } }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumed = ResumeOnce(continuation)
            for (signal, source) in zip(signals, sources) {
                Foundation.signal(signal, SIG_IGN)
                source.setEventHandler { resumed.resume() }
                source.resume()
            }
        }
    }

    private final class ResumeOnce: @unchecked Sendable {
        private let lock = NSLock()
        private var continuation: CheckedContinuation<Void, Never>?

        init(_ continuation: CheckedContinuation<Void, Never>) {
            self.continuation = continuation
        }

        func resume() {
            lock.lock()
            let continuation = self.continuation
            self.continuation = nil
            lock.unlock()
            continuation?.resume()
        }
    }
}
