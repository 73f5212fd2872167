import Foundation
import GantryHTTP
import NIOHTTP1

/// What `gantry get`, `scale`, `rollout` and `logs` use to talk to a running gantry.
public struct AdminClient: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let host: String
    public let port: Int
    /// Sent with every request when set: the admin API's `admin.token`.
    public var token: String?

    /// - Parameter address: `host:port`, e.g. `127.0.0.1:9901`.
    public init(address: String, token: String? = nil) throws {
        self.token = token
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw Failure(description: "\"\(address)\" is not host:port")
        }
        host = String(address[..<colon])
        self.port = port
    }

    /// Sends one request and returns the status and body.
    public func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, timeout: Duration = .seconds(5)) async throws
        -> (status: Int, body: Data)
    {
        do {
            return try await SimpleHTTPClient.request(
                method, host: host, port: port, path: path, body: body, headers: token.map { [("authorization", "Bearer \($0)")] } ?? [],
                timeout: timeout)
        } catch {
            throw Failure(description: "cannot reach gantry's admin API at \(host):\(port) (is `gantry up` running?): \(error)")
        }
    }
}
