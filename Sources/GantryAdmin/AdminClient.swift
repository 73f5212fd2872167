import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// What `gantry get`, `scale`, `rollout` and `logs` use to talk to a running gantry.
public struct AdminClient: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let host: String
    public let port: Int

    /// - Parameter address: `host:port`, e.g. `127.0.0.1:9901`.
    public init(address: String) throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw Failure(description: "\"\(address)\" is not host:port")
        }
        host = String(address[..<colon])
        self.port = port
    }

    /// Sends one request and returns the status and body.
    public func request(_ method: HTTPMethod, _ path: String, body: Data? = nil) async throws -> (status: Int, body: Data) {
        let group = MultiThreadedEventLoopGroup.singleton
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(2))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw Failure(description: "cannot reach gantry's admin API at \(host):\(port) (is `gantry up` running?): \(error)")
        }
        return try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "host", value: "\(host):\(port)")
            headers.add(name: "connection", value: "close")
            headers.add(name: "content-length", value: "\(body?.count ?? 0)")
            if body != nil { headers.add(name: "content-type", value: "application/json") }
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            var status = 0
            var received = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let head): status = Int(head.status.code)
                case .body(var chunk): received.writeBuffer(&chunk)
                case .end: return (status, Data(received.readableBytesView))
                }
            }
            throw Failure(description: "the admin API closed the connection before answering")
        }
    }
}
