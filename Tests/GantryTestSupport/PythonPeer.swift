import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A Python script run as a server on loopback, for a peer written by others (OpenSSL's TLS,
/// the `websockets` library): it prints `MARKER PORT` once listening, and is killed with the
/// object that started it (SIGKILL: a child inherits the test process's ignored SIGTERM).
public final class PythonPeer: Sendable {
    public let process: GantryProcess
    public let port: Int

    public init(script: String, named name: String, arguments: [String] = [], marker: String, interpreter: String = "python3") async throws {
        let directory = GantryProcess.scratchDirectory()
        let path = directory.appendingPathComponent(name).path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        process = try GantryProcess([path] + arguments, directory: directory, executable: interpreter)
        guard let port = await process.waitForPort(after: marker, in: \.stdout) else {
            throw TestPKI.Failure(description: "\(name) did not start: \(process.stderr)")
        }
        self.port = port
    }

    /// A peer that accepts connections (the kernel completes them) and never says a word.
    public static func silent() async throws -> PythonPeer {
        try await PythonPeer(
            script: """
                import socket, time
                server = socket.socket()
                server.bind(("127.0.0.1", 0))
                server.listen(16)
                print("silent on 127.0.0.1:%d" % server.getsockname()[1], flush=True)
                time.sleep(600)
                """, named: "silent-server.py", marker: "silent on 127.0.0.1:")
    }

    deinit {
        process.signal(SIGKILL)
        process.process.waitForEnd()
    }
}
