import Foundation
import Logging
import SQLiteNIO

/// The SQLite database an example pod keeps its data in: `$DATABASE_PATH`, else
/// `<name>.sqlite` in the working directory. Pods of one service share the file, as replicas
/// share a database; a busy timeout lets them take turns writing.
enum ExampleDatabase {
    static func open(defaultName: String) async throws -> SQLiteConnection {
        let path = ProcessInfo.processInfo.environment["DATABASE_PATH"] ?? "\(defaultName).sqlite"
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        var logger = Logger(label: "sqlite")
        logger.logLevel = .warning
        let connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        _ = try await connection.query("PRAGMA busy_timeout = 5000")
        _ = try await connection.query("PRAGMA journal_mode = WAL")
        return connection
    }
}
