import ArgumentParser
import Foundation
import GantryAdmin
import NIOHTTP1

/// Where a running gantry's admin API is: `--admin`, else `$GANTRY_ADMIN`, else 127.0.0.1:9901.
struct AdminOptions: ParsableArguments {
    @Option(name: .customLong("admin"), help: "The admin API of a running gantry, host:port. Default: $GANTRY_ADMIN, else 127.0.0.1:9901.")
    var address: String?

    @Option(name: .customLong("admin-token-file"), help: "A file holding the admin API's token (admin.token). Default: $GANTRY_ADMIN_TOKEN.")
    var tokenFile: String?

    var client: AdminClient {
        get throws {
            var token = ProcessEnvironment.value("GANTRY_ADMIN_TOKEN")
            if let tokenFile {
                guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                    throw ValidationError("--admin-token-file \(tokenFile): cannot read the file")
                }
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return try AdminClient(address: address ?? ProcessEnvironment.value("GANTRY_ADMIN") ?? "127.0.0.1:9901", token: token)
        }
    }

    /// GETs `path` and decodes the JSON answer, or exits with the API's error.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try decode(await send(.GET, path), as: type)
    }

    func send(_ method: HTTPMethod, _ path: String, body: [String: Int]? = nil) async throws -> Data {
        let data = try body.map { try JSONEncoder().encode($0) }
        let (status, answer) = try await client.request(method, path, body: data)
        guard status == 200 else {
            let message = (try? JSONDecoder().decode([String: String].self, from: answer))?["error"] ?? "HTTP \(status)"
            printError("gantry: \(message)")
            throw ExitCode(1)
        }
        return answer
    }

    private func decode<T: Decodable>(_ data: Data, as type: T.Type) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: data)
    }
}
