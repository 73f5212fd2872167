import Foundation
import GantryConfig
import GantryCore
import GantryHTTP
import GantryTLS
import NIOCore

/// What policies' background work may ask of the world (a jwt policy refreshing its keys): the
/// data plane's current endpoints and requests to other servers, on one of its event loops.
struct ControlPolicyEnvironment: PolicyEnvironment {
    let plane: DataPlane
    let eventLoop: any EventLoop

    init(plane: DataPlane) {
        self.plane = plane
        self.eventLoop = plane.group.next()
    }

    func endpoint(ofService name: String) -> EndpointAddress? {
        plane.endpoints(forService: name)?.endpoints.randomElement()?.address
    }

    func upstreamTLS(ofService name: String) -> UpstreamTLS? {
        plane.snapshot.services.first { $0.name == name }?.tls
    }

    func send(_ request: OutgoingRequest) -> EventLoopFuture<OutgoingResponse> {
        request.send(on: eventLoop)
    }

    func redis(host: String, port: Int, command: [String], timeout: Duration) -> EventLoopFuture<RedisValue> {
        eventLoop.makeFailedFuture(RedisClient.Failure(description: "no Redis connection outside the event loops' requests"))
    }

    func record(_ event: PolicyEvent) {}
}

extension OutgoingRequest {
    /// Sends the request with gantry's small HTTP/1.1 client, over TLS for an HTTPS target; the answer completes on `eventLoop`.
    public func send(on eventLoop: any EventLoop) -> EventLoopFuture<OutgoingResponse> {
        let request = self
        return eventLoop.makeFutureWithTask {
            let tls = try request.tls.map { ($0, try TLSClientContext.shared.context(for: $0)) }
            let answer = try await SimpleHTTPClient.request(
                request.method, host: request.host, port: request.port, path: request.path, body: request.body, headers: request.headers,
                timeout: request.timeout, tls: tls.map { .init(context: $0.1, serverName: $0.0.serverName(forHost: request.host)) })
            return OutgoingResponse(status: answer.status, body: answer.body)
        }
    }
}
