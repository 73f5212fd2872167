import Foundation
import GantryTLS
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// One HTTP/1.1 request per connection, for the control plane: the admin client, key fetches
/// (over TLS for `https://` key sets and introspection endpoints).
public enum SimpleHTTPClient {
    /// A TLS context and the name to send as SNI and verify (nil: the certificate must carry the
    /// peer's IP address).
    public struct TLS: Sendable {
        public let context: NIOSSLContext
        public let serverName: String?

        public init(context: NIOSSLContext, serverName: String?) {
            self.context = context
            self.serverName = serverName
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }

    /// An HTTP/1.1 client connection, over TLS when `tls` is set, for one exchange. Over TLS it
    /// is returned once the handshake has succeeded: a handshake that fails throws its own
    /// error (an untrusted certificate...), never the "I/O on closed channel" of a write that
    /// raced it.
    public static func connect(host: String, port: Int, tls: TLS?, timeout: Duration) async throws
        -> NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
    {
        let (channel, handshake) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.milliseconds(Int64(timeout / .milliseconds(1))))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    var handshake: EventLoopFuture<Void>?
                    if let tls {
                        handshake = try channel.pipeline.syncOperations.addTLSClientHandlers(
                            context: tls.context, serverName: tls.serverName, timeout: .milliseconds(Int64(timeout / .milliseconds(1))))
                    }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return (try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel), handshake)
                }
            }
        do {
            try await handshake?.get()
        } catch {
            try? await channel.channel.close()
            throw error
        }
        return channel
    }

    public static func request(
        _ method: HTTPMethod, host: String, port: Int, path: String, hostHeader: String? = nil, body: Data? = nil,
        headers extra: [(String, String)] = [], timeout: Duration = .seconds(5), maxBody: Int = 4 << 20, tls: TLS? = nil
    ) async throws -> (status: Int, body: Data) {
        let channel = try await connect(host: host, port: port, tls: tls, timeout: timeout)
        let exchange = Task {
            try await channel.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders()
                headers.add(name: "host", value: hostHeader ?? (port == (tls == nil ? 80 : 443) ? host : "\(host):\(port)"))
                headers.add(name: "user-agent", value: "gantry")
                headers.add(name: "connection", value: "close")
                headers.add(name: "content-length", value: "\(body?.count ?? 0)")
                if body != nil, !extra.contains(where: { $0.0.lowercased() == "content-type" }) {
                    headers.add(name: "content-type", value: "application/json")
                }
                for (name, value) in extra { headers.add(name: name, value: value) }
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)))
                if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                try await outbound.write(.end(nil))
                var status = 0
                var received = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let head): status = Int(head.status.code)
                    case .body(var chunk):
                        guard received.readableBytes + chunk.readableBytes <= maxBody else {
                            throw Failure(description: "the response is larger than \(maxBody) bytes")
                        }
                        received.writeBuffer(&chunk)
                    case .end: return (status, Data(received.readableBytesView))
                    }
                }
                throw Failure(description: "the connection closed before the response ended")
            }
        }
        let timedOut = Atomic<Bool>(false)
        let timer = Task {
            try await Task.sleep(for: timeout)
            timedOut.store(true, ordering: .relaxed)
            channel.channel.close(promise: nil)
        }
        defer { timer.cancel() }
        do {
            return try await exchange.value
        } catch {
            throw timedOut.load(ordering: .relaxed) ? Failure(description: "no complete response within \(timeout)") : error
        }
    }
}
