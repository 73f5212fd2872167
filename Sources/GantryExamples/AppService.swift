import Foundation
import GantryHTTP
import NIOPosix
import SQLiteNIO

/// `gantry example app-service`: the application behind example.com/app.
///
///     GET /app/dashboard          the dashboard of the user the gateway names in X-User-ID
///     GET /app/live               a WebSocket: the dashboard's live updates, one a second
///     GET /app/work?cpu=50ms      burns that much CPU, then answers (for autoscaling demos)
///     GET /api/reports            for machine clients (OAuth 2.0 client credentials), named in X-Client-ID
///     GET /healthz
///
/// It trusts the identity header because only the gateway, which checks the token and removes
/// any copy a client sent, can reach it.
public struct AppService: Sendable {
    public static let identityHeader = "X-User-ID"
    private let database: SQLiteConnection
    private let podName: String

    public static func open() async throws -> AppService {
        let database = try await ExampleDatabase.open(defaultName: "app-service")
        _ = try await database.query(
            "CREATE TABLE IF NOT EXISTS dashboards (username TEXT PRIMARY KEY, plan TEXT NOT NULL, projects INTEGER NOT NULL)")
        _ = try await database.query("INSERT OR IGNORE INTO dashboards (username, plan, projects) VALUES ('demo', 'pro', 3)")
        return AppService(database: database, podName: ProcessInfo.processInfo.environment["POD_NAME"] ?? "app-service")
    }

    /// Closes the database; call once the server has stopped.
    public func close() async throws {
        try await database.close()
    }

    public func handle(_ request: SimpleHTTPServer.Request) async -> SimpleHTTPServer.Response {
        switch (request.method, request.path) {
        case ("GET", "/healthz"):
            return .json(["status": "ok"])
        case ("GET", "/api/reports"):
            // For machine clients: the gateway's oauth2 policy names the client in X-Client-ID.
            return .json(["client": request.header("X-Client-ID") ?? "", "report": "orders", "servedBy": podName])
        case ("GET", "/app/dashboard"):
            return await dashboard(user: request.header(Self.identityHeader))
        case ("GET", "/app/work"):
            // On a thread pool, so that health checks stay answered while CPU burns.
            let cpu = request.query["cpu"] ?? "10ms"
            return (try? await NIOThreadPool.singleton.runIfActive { work(cpu: cpu) }) ?? .error(503, "shutting down")
        default:
            return .error(404, "not found")
        }
    }

    /// `/app/live`: a WebSocket that sends the user's dashboard figures every second (with the
    /// pod that serves them, so a reconnection after a pod leaves shows on another), and
    /// answers each message the client sends with its echo.
    public func live(_ request: SimpleHTTPServer.Request, socket: SimpleWebSocket, messages: AsyncStream<String>) async {
        let user = request.header(Self.identityHeader) ?? ""
        let pod = podName
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var tick = 0
                while !Task.isCancelled {
                    tick += 1
                    let update = LiveUpdate(user: user, tick: tick, servedBy: pod, time: Date().timeIntervalSince1970)
                    guard let text = try? String(decoding: encoder.encode(update), as: UTF8.self), (try? await socket.send(text)) != nil
                    else { return }
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            group.addTask {
                for await message in messages {
                    guard (try? await socket.send(#"{"echo":\#(Self.quoted(message)),"servedBy":\#(Self.quoted(pod))}"#)) != nil else { return }
                }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private struct LiveUpdate: Encodable {
        let user: String
        let tick: Int
        let servedBy: String
        let time: Double
    }

    private static func quoted(_ text: String) -> String {
        (try? String(decoding: JSONEncoder().encode(text), as: UTF8.self)) ?? "\"\""
    }

    private func dashboard(user: String?) async -> SimpleHTTPServer.Response {
        guard let user, !user.isEmpty else { return .error(401, "no user: the gateway sends \(Self.identityHeader)") }
        do {
            let rows = try await database.query("SELECT plan, projects FROM dashboards WHERE username = ?", [.text(user)])
            guard let row = rows.first else { return .error(404, "no dashboard for \(user)") }
            struct Dashboard: Encodable {
                let user: String
                let plan: String
                let projects: Int
                let servedBy: String
            }
            return .json(
                Dashboard(
                    user: user, plan: row.column("plan")?.string ?? "", projects: Int(row.column("projects")?.integer ?? 0),
                    servedBy: podName))
        } catch {
            return .error(500, "database error: \(error)")
        }
    }

    /// Spins for the requested CPU time (`25ms`, `0.2s`; at most 5 s).
    private func work(cpu: String) -> SimpleHTTPServer.Response {
        guard let wanted = Self.parseMilliseconds(cpu), wanted >= 0, wanted <= 5000 else {
            return .error(400, "cpu must be a duration up to 5s, e.g. 50ms")
        }
        let clock = ContinuousClock()
        let start = clock.now
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        while clock.now - start < .milliseconds(wanted) {
            for _ in 0..<1000 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
        }
        return .json(["servedBy": podName, "cpuMs": "\(wanted)", "checksum": "\(state & 0xffff)"])
    }

    static func parseMilliseconds(_ text: String) -> Int? {
        if text.hasSuffix("ms") { return Int(text.dropLast(2)) }
        if text.hasSuffix("s"), let seconds = Double(text.dropLast()) { return Int(seconds * 1000) }
        return Int(text)
    }
}
