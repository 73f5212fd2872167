import Crypto
import CryptoExtras
import Foundation
import GantryHTTP
import JWTKit
import SQLiteNIO

/// `gantry example auth-service`: logs users in and issues ES256 JSON Web Tokens, and issues
/// and introspects OAuth 2.0 client-credentials tokens (see `AuthService+OAuth.swift`).
///
///     POST /auth/login                 {"username": "demo", "password": "…"} → {"access_token": …}
///     GET  /auth/.well-known/jwks.json the public key that verifies the tokens
///     POST /auth/token                 client credentials → opaque access token
///     POST /auth/introspect            RFC 7662
///     GET  /healthz
///
/// Users live in SQLite with salted PBKDF2-SHA256 password hashes; a demo user is created on
/// first start and its password printed (or taken from `$DEMO_PASSWORD`). The signing key is
/// kept in the database too, so every replica signs with the same key.
public struct AuthService: Sendable {
    public static let issuer = "https://example.com/auth"
    public static let audience = "example.com"
    static let tokenLifetime: TimeInterval = 15 * 60
    static let hashRounds = 210_000

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var sub: SubjectClaim
        var aud: AudienceClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim

        func verify(using algorithm: some JWTAlgorithm) throws {
            try exp.verifyNotExpired()
        }
    }

    let database: SQLiteConnection
    private let keys: JWTKeyCollection
    private let kid: String
    private let jwks: Data

    /// Opens the database, seeding the demo user and the signing key on first start.
    public static func open() async throws -> AuthService {
        let database = try await ExampleDatabase.open(defaultName: "auth-service")
        _ = try await database.query(
            "CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL)")
        _ = try await database.query("CREATE TABLE IF NOT EXISTS signing_key (id INTEGER PRIMARY KEY CHECK (id = 1), kid TEXT, pem TEXT)")
        try await seedDemoUser(database)
        try await createOAuthTables(database)

        let candidate = ES256PrivateKey()
        _ = try await database.query(
            "INSERT OR IGNORE INTO signing_key (id, kid, pem) VALUES (1, ?, ?)",
            [.text(randomToken(bytes: 8)), .text(candidate.pemRepresentation)])
        let row = try await database.query("SELECT kid, pem FROM signing_key WHERE id = 1")[0]
        guard let kid = row.column("kid")?.string, let pem = row.column("pem")?.string else {
            throw ExampleError("the signing key row is damaged")
        }
        let key = try ES256PrivateKey(pem: pem)
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: key, kid: JWKIdentifier(string: kid))
        guard let parameters = key.publicKey.parameters else { throw ExampleError("cannot export the public key") }
        let jwk: [String: String] = [
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": parameters.x, "y": parameters.y,
        ]
        let jwks = try JSONEncoder().encode(["keys": [jwk]])
        return AuthService(database: database, keys: keys, kid: kid, jwks: jwks)
    }

    private static func seedDemoUser(_ database: SQLiteConnection) async throws {
        let existing = try await database.query("SELECT username FROM users WHERE username = 'demo'")
        guard existing.isEmpty else { return }
        let password = ProcessInfo.processInfo.environment["DEMO_PASSWORD"] ?? randomToken(bytes: 9)
        let salt = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        let hash = try hashPassword(password, salt: salt)
        _ = try await database.query(
            "INSERT OR IGNORE INTO users (username, salt, hash) VALUES ('demo', ?, ?)",
            [.blob(ByteBuffer(bytes: salt)), .blob(ByteBuffer(bytes: hash))])
        FileHandle.standardOutput.write(Data("demo user created: username=demo password=\(password)\n".utf8))
    }

    static func hashPassword(_ password: String, salt: Data) throws -> Data {
        let key = try KDF.Insecure.PBKDF2.deriveKey(
            from: Data(password.utf8), salt: salt, using: .sha256, outputByteCount: 32, rounds: hashRounds)
        return key.withUnsafeBytes { Data($0) }
    }

    static func randomToken(bytes: Int) -> String {
        Data((0..<bytes).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// Closes the database; call once the server has stopped.
    public func close() async throws {
        try await database.close()
    }

    public func handle(_ request: SimpleHTTPServer.Request) async -> SimpleHTTPServer.Response {
        switch (request.method, request.path) {
        case ("GET", "/healthz"):
            return .json(["status": "ok"])
        case ("GET", "/auth/.well-known/jwks.json"):
            return SimpleHTTPServer.Response(status: 200, headers: [("Content-Type", "application/json")], body: jwks)
        case ("POST", "/auth/login"):
            return await login(request.body)
        case ("POST", "/auth/token"):
            return await issueClientToken(request)
        case ("POST", "/auth/introspect"):
            return await introspect(request)
        case (_, "/auth/login"):
            return .error(405, "use POST")
        default:
            return .error(404, "not found")
        }
    }

    private func login(_ body: Data) async -> SimpleHTTPServer.Response {
        struct Login: Decodable {
            let username: String
            let password: String
        }
        guard let login = try? JSONDecoder().decode(Login.self, from: body) else {
            return .error(400, "send {\"username\": \"…\", \"password\": \"…\"}")
        }
        do {
            let rows = try await database.query("SELECT salt, hash FROM users WHERE username = ?", [.text(login.username)])
            guard let row = rows.first, let salt = row.column("salt")?.blob, let stored = row.column("hash")?.blob else {
                return .error(401, "unknown user or wrong password")
            }
            let hash = try Self.hashPassword(login.password, salt: Data(salt.readableBytesView))
            guard Self.constantTimeEqual(hash, Data(stored.readableBytesView)) else {
                return .error(401, "unknown user or wrong password")
            }
            let now = Date()
            let claims = Claims(
                iss: IssuerClaim(value: Self.issuer), sub: SubjectClaim(value: login.username),
                aud: AudienceClaim(value: [Self.audience]), iat: IssuedAtClaim(value: now),
                exp: ExpirationClaim(value: now.addingTimeInterval(Self.tokenLifetime)))
            let token = try await keys.sign(claims, kid: JWKIdentifier(string: kid))
            return .json(TokenResponse(access_token: token, token_type: "Bearer", expires_in: Int(Self.tokenLifetime)))
        } catch {
            return .error(500, "login failed: \(error)")
        }
    }

    struct TokenResponse: Encodable {
        let access_token: String
        let token_type: String
        let expires_in: Int
    }

    static func constantTimeEqual(_ a: Data, _ b: Data) -> Bool {
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

struct ExampleError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
