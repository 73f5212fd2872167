import Foundation
import GantryTestSupport

/// Steady load from a real HTTP client (Python's http.client, keep-alive, several threads)
/// until stopped; every failure is kept with its reason. With `posts`, every other request is
/// a POST with a body that the upstream answers after 10 ms: a request gantry may not retry
/// once sent, so only a real drain keeps it from failing when its pod goes away. It stops by
/// itself when the test process goes away, and when the generator is released unstopped.
final class LoadGenerator {
    struct Result: Decodable {
        let ok: Int
        let failureCount: Int
        let failures: [String]
    }

    private let process = ChildProcess()
    private let stopFile: String
    private let progressFile: String
    private let outputFile: String

    init(
        port: Int, host: String = "example.com", path: String = "/load", threads: Int = 8, posts: Bool = false,
        perThreadPause: Double = 0, directory: URL
    ) throws {
        let id = UUID().uuidString.prefix(8)
        let script = directory.appendingPathComponent("load-\(id).py").path
        stopFile = directory.appendingPathComponent("load-\(id).stop").path
        progressFile = directory.appendingPathComponent("load-\(id).progress").path
        outputFile = directory.appendingPathComponent("load-\(id).json").path
        try Self.script.write(toFile: script, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: outputFile, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", script, "127.0.0.1", "\(port)", host, path, "\(threads)", stopFile, progressFile, posts ? "posts" : "gets", "\(perThreadPause)",
            "\(ProcessInfo.processInfo.processIdentifier)",
        ]
        process.standardOutput = FileHandle(forWritingAtPath: outputFile)
        try process.run()
    }

    /// Successful requests so far.
    var completed: Int {
        Int((try? String(contentsOfFile: progressFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
    }

    /// Waits until `count` more requests have succeeded.
    func waitForProgress(_ count: Int, timeout: Duration = .seconds(60)) async -> Bool {
        let target = completed + count
        return await eventually(timeout: timeout) { self.completed >= target }
    }

    /// A test that fails before ``stop()`` leaves no load running for the tests after it.
    deinit {
        _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
    }

    func stop() async throws -> Result {
        _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
        _ = await eventually(timeout: .seconds(30)) { self.process.hasEnded }
        return try JSONDecoder().decode(Result.self, from: Data(contentsOf: URL(fileURLWithPath: outputFile)))
    }

    static let script = #"""
        import http.client, json, os, sys, threading, time
        host, port, host_header, path, threads, stop_file, progress_file, mode, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8], float(sys.argv[9])
        parent = int(sys.argv[10])  # the test process
        lock = threading.Lock()
        ok = 0
        failures = []

        def worker():
            global ok
            connection = None
            sent = 0
            while not os.path.exists(stop_file):
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection(host, port, timeout=15)
                    sent += 1
                    if mode == "posts" and sent % 2 == 0:
                        connection.request("POST", path, body=b"x" * 512, headers={"Host": host_header, "X-Echo-Delay": "10ms"})
                    else:
                        connection.request("GET", path, headers={"Host": host_header})
                    response = connection.getresponse()
                    body = response.read()
                    with lock:
                        if response.status == 200:
                            ok += 1
                        else:
                            failures.append("status %d: %r" % (response.status, body[:300]))
                    if (response.getheader("Connection") or "").lower() == "close":
                        connection.close()
                        connection = None
                    if pause > 0:
                        time.sleep(pause)  # paces this client's request rate
                except Exception as error:
                    with lock:
                        failures.append("%s: %s" % (type(error).__name__, error))
                    connection = None

        def progress():
            while not os.path.exists(stop_file):
                with open(progress_file + ".tmp", "w") as f:
                    f.write(str(ok))
                os.replace(progress_file + ".tmp", progress_file)
                if os.getppid() != parent:
                    open(stop_file, "w").close()  # the test process is gone: stop, do not load the machine on
                time.sleep(0.05)

        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for w in workers + [threading.Thread(target=progress, daemon=True)]:
            w.start()
        for w in workers:
            w.join()
        print(json.dumps({"ok": ok, "failureCount": len(failures), "failures": failures[:20]}))
        """#
}
