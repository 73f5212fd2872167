import Foundation
import GantryHTTP
import GantryTLS
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// GET requests to the Kubernetes API server: one for a list, one long response for a watch,
/// whose body is a stream of JSON watch events, one a line. A small client of its own rather than
/// a generated one: gantry reads two kinds of object, and a Kubernetes client package is not
/// among its dependencies.
public struct KubernetesAPI: Sendable {
    public let cluster: KubernetesCluster
    private let tls: SimpleHTTPClient.TLS?

    /// An answer other than 200, with the API's Status message when it sent one.
    public struct StatusError: Error, CustomStringConvertible {
        public let status: Int
        public let message: String

        public var description: String { "the API server answered \(status)\(message.isEmpty ? "" : ": \(message)")" }
    }

    public init(cluster: KubernetesCluster) throws {
        self.cluster = cluster
        guard cluster.scheme == "https" else {
            tls = nil
            return
        }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let authority = cluster.certificateAuthority {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(authority))
        }
        if cluster.insecureSkipVerify { configuration.certificateVerification = .none }
        if let certificate = cluster.clientCertificate, let key = cluster.clientKey {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
        }
        let name = cluster.serverName ?? (Self.isIPAddress(cluster.host) ? nil : cluster.host)
        tls = SimpleHTTPClient.TLS(context: try NIOSSLContext(configuration: configuration), serverName: name)
    }

    private static func isIPAddress(_ host: String) -> Bool {
        host.contains(":") || host.split(separator: ".").allSatisfy { UInt8($0) != nil }
    }

    private func headers() async throws -> [(String, String)] {
        var headers = [("accept", "application/json")]
        if let authorization = try await cluster.authorization() { headers.append(("authorization", authorization)) }
        return headers
    }

    /// A list: the whole answer.
    public func get(_ path: String) async throws -> Data {
        let (status, body) = try await SimpleHTTPClient.request(
            .GET, host: cluster.host, port: cluster.port, path: path, headers: try await headers(), timeout: .seconds(30), maxBody: 256 << 20,
            tls: tls)
        guard status == 200 else { throw StatusError(status: status, message: Self.message(in: body)) }
        return body
    }

    /// A watch: `line` gets each event's JSON as it arrives, until the server ends the response
    /// (its `timeoutSeconds`), nothing arrives for `idle`, or `line` returns false.
    public func watch(_ path: String, idle: Duration, line: @escaping @Sendable (Data) async throws -> Bool) async throws {
        let headers = try await headers()
        let tls = self.tls
        let channel = try await SimpleHTTPClient.connect(host: cluster.host, port: cluster.port, tls: tls, timeout: .seconds(10))
        let lastRead = NIOLockedValueBox(ContinuousClock.now)
        let timedOut = Atomic(false)
        let watchdog = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                if ContinuousClock.now - lastRead.withLockedValue({ $0 }) > idle {
                    timedOut.store(true, ordering: .relaxed)
                    channel.channel.close(promise: nil)
                    return
                }
            }
        }
        defer { watchdog.cancel() }
        let host = cluster.port == (tls == nil ? 80 : 443) ? cluster.host : "\(cluster.host):\(cluster.port)"
        do {
            try await channel.executeThenClose { inbound, outbound in
                var head = HTTPHeaders([("host", host), ("user-agent", "gantry")])
                for (name, value) in headers { head.add(name: name, value: value) }
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: head)))
                try await outbound.write(.end(nil))
                var status = 0
                var pending = ByteBuffer()
                for try await part in inbound {
                    lastRead.withLockedValue { $0 = .now }
                    switch part {
                    case .head(let response):
                        status = Int(response.status.code)
                    case .body(var chunk):
                        pending.writeBuffer(&chunk)
                        guard status == 200 else { continue }
                        while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                            let length = newline - pending.readerIndex
                            let bytes = Data(pending.readBytes(length: length)!)
                            pending.moveReaderIndex(forwardBy: 1)
                            if !bytes.isEmpty, try await !line(bytes) { return }
                        }
                        pending.discardReadBytes()
                    case .end:
                        guard status == 200 else {
                            throw StatusError(status: status, message: Self.message(in: Data(pending.readableBytesView)))
                        }
                        if pending.readableBytes > 0 { _ = try await line(Data(pending.readableBytesView)) }
                        return
                    }
                }
                throw SimpleHTTPClient.Failure(description: "the watch connection closed mid-response")
            }
        } catch {
            if timedOut.load(ordering: .relaxed) {
                throw SimpleHTTPClient.Failure(description: "nothing arrived on the watch for \(idle)")
            }
            throw error
        }
    }

    /// A `Status` object's message.
    static func message(in body: Data) -> String {
        struct Status: Decodable { let message: String? }
        return (try? JSONDecoder().decode(Status.self, from: body))?.message ?? String(decoding: body.prefix(200), as: UTF8.self)
    }
}
