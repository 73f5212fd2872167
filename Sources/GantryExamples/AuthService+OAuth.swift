import Crypto
import Foundation
import GantryHTTP
import SQLiteNIO

/// OAuth 2.0 for machines: the client-credentials grant (RFC 6749 §4.4) issues opaque access
/// tokens, and token introspection (RFC 7662) tells a resource server, such as gantry's
/// `oauth2` policy, whether a token is active and what it may do.
///
///     POST /auth/token        grant_type=client_credentials[&scope=…], client authenticated with HTTP Basic
///     POST /auth/introspect   token=…, caller authenticated with HTTP Basic as a client with the `introspect` scope
///
/// Client secrets are stored salted and hashed like passwords; tokens only as SHA-256 digests.
extension AuthService {
    static let accessTokenLifetime = 3600

    static func createOAuthTables(_ database: SQLiteConnection) async throws {
        _ = try await database.query(
            "CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, scope TEXT NOT NULL)")
        _ = try await database.query(
            "CREATE TABLE IF NOT EXISTS access_tokens (digest TEXT PRIMARY KEY, client_id TEXT NOT NULL, scope TEXT NOT NULL, iat INTEGER NOT NULL, exp INTEGER NOT NULL)")
        // A demo client for the client-credentials flow, and gantry's own, which may introspect.
        try await seedClient(database, id: "reports", scope: "orders:read orders:write", secretVariable: "DEMO_CLIENT_SECRET")
        try await seedClient(database, id: "gantry", scope: "introspect", secretVariable: "GANTRY_CLIENT_SECRET")
    }

    private static func seedClient(_ database: SQLiteConnection, id: String, scope: String, secretVariable: String) async throws {
        guard try await database.query("SELECT client_id FROM clients WHERE client_id = ?", [.text(id)]).isEmpty else { return }
        let secret = ProcessInfo.processInfo.environment[secretVariable] ?? randomToken(bytes: 18)
        let salt = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        _ = try await database.query(
            "INSERT OR IGNORE INTO clients (client_id, salt, hash, scope) VALUES (?, ?, ?, ?)",
            [.text(id), .blob(ByteBuffer(bytes: salt)), .blob(ByteBuffer(bytes: try hashPassword(secret, salt: salt))), .text(scope)])
        FileHandle.standardOutput.write(Data("client created: client_id=\(id) client_secret=\(secret) scope=\"\(scope)\"\n".utf8))
    }

    /// The client an `Authorization: Basic` header names, if its secret is right.
    func authenticatedClient(_ request: SimpleHTTPServer.Request) async throws -> (id: String, scope: [String])? {
        guard let header = request.header("Authorization"), header.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else { return nil }
        let id = String(text[..<colon]).removingPercentEncoding ?? String(text[..<colon])
        let secret = String(text[text.index(after: colon)...]).removingPercentEncoding ?? String(text[text.index(after: colon)...])
        let rows = try await database.query("SELECT salt, hash, scope FROM clients WHERE client_id = ?", [.text(id)])
        guard let row = rows.first, let salt = row.column("salt")?.blob, let stored = row.column("hash")?.blob,
            Self.constantTimeEqual(try Self.hashPassword(secret, salt: Data(salt.readableBytesView)), Data(stored.readableBytesView))
        else { return nil }
        return (id, (row.column("scope")?.string ?? "").split(separator: " ").map(String.init))
    }

    func issueClientToken(_ request: SimpleHTTPServer.Request) async -> SimpleHTTPServer.Response {
        let form = Self.form(request.body)
        guard form["grant_type"] == "client_credentials" else {
            return .json(["error": "unsupported_grant_type"], status: 400)
        }
        do {
            guard let client = try await authenticatedClient(request) else {
                var response = SimpleHTTPServer.Response.json(["error": "invalid_client"], status: 401)
                response.headers.append(("WWW-Authenticate", #"Basic realm="auth-service""#))
                return response
            }
            let asked = form["scope"].map { $0.split(separator: " ").map(String.init) } ?? client.scope
            guard asked.allSatisfy(client.scope.contains) else { return .json(["error": "invalid_scope"], status: 400) }
            let token = Self.randomToken(bytes: 32)
            let now = Int(Date().timeIntervalSince1970)
            _ = try await database.query(
                "INSERT INTO access_tokens (digest, client_id, scope, iat, exp) VALUES (?, ?, ?, ?, ?)",
                [.text(Self.digest(token)), .text(client.id), .text(asked.joined(separator: " ")), .integer(now), .integer(now + Self.accessTokenLifetime)])
            struct Token: Encodable {
                let access_token: String
                let token_type: String
                let expires_in: Int
                let scope: String
            }
            var response = SimpleHTTPServer.Response.json(
                Token(access_token: token, token_type: "Bearer", expires_in: Self.accessTokenLifetime, scope: asked.joined(separator: " ")))
            response.headers.append(("Cache-Control", "no-store"))
            return response
        } catch {
            return .error(500, "token failed: \(error)")
        }
    }

    func introspect(_ request: SimpleHTTPServer.Request) async -> SimpleHTTPServer.Response {
        do {
            guard let caller = try await authenticatedClient(request), caller.scope.contains("introspect") else {
                return .json(["error": "invalid_client"], status: 401)
            }
            guard let token = Self.form(request.body)["token"] else { return .json(["error": "invalid_request"], status: 400) }
            let rows = try await database.query(
                "SELECT client_id, scope, iat, exp FROM access_tokens WHERE digest = ?", [.text(Self.digest(token))])
            let now = Int(Date().timeIntervalSince1970)
            guard let row = rows.first, let exp = row.column("exp")?.integer, Int(exp) > now else {
                return .json(["active": false])
            }
            struct Active: Encodable {
                let active: Bool
                let client_id: String
                let sub: String
                let scope: String
                let token_type: String
                let iat: Int
                let exp: Int
            }
            let client = row.column("client_id")?.string ?? ""
            return .json(
                Active(
                    active: true, client_id: client, sub: client, scope: row.column("scope")?.string ?? "", token_type: "Bearer",
                    iat: Int(row.column("iat")?.integer ?? 0), exp: Int(exp)))
        } catch {
            return .error(500, "introspection failed: \(error)")
        }
    }

    static func digest(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// `application/x-www-form-urlencoded` fields.
    static func form(_ body: Data) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            fields[parts[0]] = parts.count == 2 ? parts[1] : ""
        }
        return fields
    }
}
