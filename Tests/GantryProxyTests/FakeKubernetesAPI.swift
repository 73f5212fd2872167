import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A stand-in for the Kubernetes API server: no API server can run on these machines, so this
/// one speaks the documented list/watch wire format for EndpointSlices on loopback. A list
/// answers `EndpointSliceList` with a resourceVersion; a watch answers 200 and then one JSON
/// watch event a line, in chunks, for as long as the test wants (ADDED, MODIFIED, DELETED,
/// BOOKMARK, ERROR 410), or answers 410 for a version it has forgotten. A test can also make it
/// refuse requests (401, 403, 500), drop its watch connections mid-stream, or stop.
final class FakeKubernetesAPI: Sendable {
    struct Request: Sendable {
        let uri: String
        let authorization: String?

        var isWatch: Bool { uri.contains("watch=1") }

        /// A query parameter's value.
        func query(_ name: String) -> String? {
            URLComponents(string: uri)?.queryItems?.first { $0.name == name }?.value
        }
    }

    private struct State {
        var version = 100
        /// Each slice's JSON, with its resourceVersion.
        var slices: [String: Data] = [:]
        var requests: [Request] = []
        var refusals: [Int] = []
        var forgottenBefore = 0
        var watchers: [any Channel] = []
    }

    /// The state, shared with each connection's handler.
    private final class Box: Sendable {
        let state = NIOLockedValueBox<State>(State())
    }

    private let box = Box()
    private let server: any Channel
    let port: Int

    init(tls: NIOSSLContext? = nil) async throws {
        let box = self.box
        server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = server.localAddress!.port!
    }

    func stop() async {
        let watchers = box.state.withLockedValue { state in
            defer { state.watchers = [] }
            return state.watchers
        }
        for watcher in watchers { try? await watcher.close() }
        try? await server.close()
    }

    var requests: [Request] { box.state.withLockedValue { $0.requests } }
    var lists: [Request] { requests.filter { !$0.isWatch } }
    var watches: [Request] { requests.filter(\.isWatch) }
    var openWatches: Int { box.state.withLockedValue { $0.watchers.count } }
    var resourceVersion: Int { box.state.withLockedValue { $0.version } }

    /// The next requests are answered with these statuses (and a Status body), in order.
    func refuse(_ statuses: Int...) {
        box.state.withLockedValue { $0.refusals += statuses }
    }

    /// A slice as the API serves it.
    static func slice(
        _ name: String, service: String, port: Int = 8080, portName: String = "http",
        endpoints: [(address: String, ready: Bool?, serving: Bool?, terminating: Bool?)]
    ) -> [String: Any] {
        [
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": ["name": name, "namespace": "shop", "labels": ["kubernetes.io/service-name": service]],
            "addressType": "IPv4",
            "ports": [["name": portName, "port": port, "protocol": "TCP"]],
            "endpoints": endpoints.map { endpoint -> [String: Any] in
                var conditions: [String: Any] = [:]
                if let ready = endpoint.ready { conditions["ready"] = ready }
                if let serving = endpoint.serving { conditions["serving"] = serving }
                if let terminating = endpoint.terminating { conditions["terminating"] = terminating }
                return ["addresses": [endpoint.address], "conditions": conditions]
            },
        ]
    }

    /// Changes a slice and tells the open watches (ADDED, MODIFIED or DELETED).
    func apply(_ type: String, _ slice: [String: Any]) {
        let object = store(slice, deleted: type == "DELETED")
        send(["type": type, "object": object], to: box.state.withLockedValue { $0.watchers })
    }

    /// Changes a slice without telling anyone: what a watch misses while it is down.
    func applyQuietly(_ slice: [String: Any]?, named name: String) {
        guard let slice else {
            box.state.withLockedValue { state in
                state.version += 1
                state.slices[name] = nil
            }
            return
        }
        _ = store(slice, deleted: false)
    }

    /// Gives the slice the next resourceVersion and keeps (or forgets) it.
    private func store(_ slice: [String: Any], deleted: Bool) -> [String: Any] {
        let version = box.state.withLockedValue { state in
            state.version += 1
            return state.version
        }
        var object = slice
        var metadata = object["metadata"] as! [String: Any]
        metadata["resourceVersion"] = String(version)
        object["metadata"] = metadata
        let name = metadata["name"] as! String
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        box.state.withLockedValue { $0.slices[name] = deleted ? nil : data }
        return object
    }

    func bookmark() {
        let (version, watchers) = box.state.withLockedValue { state in
            state.version += 1
            return (state.version, state.watchers)
        }
        send(["type": "BOOKMARK", "object": ["kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1", "metadata": ["resourceVersion": String(version)]]], to: watchers)
    }

    /// Forgets every version before now: open watches get ERROR 410, new ones answer 410.
    func expire() {
        let watchers = box.state.withLockedValue { state in
            // Every version before a new one is gone: a list made now is current.
            state.version += 1
            state.forgottenBefore = state.version
            return state.watchers
        }
        send(Self.status(410, reason: "Expired", message: "too old resource version"), wrapped: true, to: watchers)
    }

    /// Closes every open watch connection without ending its response.
    func dropWatches() {
        let watchers = box.state.withLockedValue { state in
            defer { state.watchers = [] }
            return state.watchers
        }
        for watcher in watchers { watcher.close(promise: nil) }
    }

    private func send(_ object: [String: Any], wrapped: Bool = false, to watchers: [any Channel]) {
        let event: [String: Any] = wrapped ? ["type": "ERROR", "object": object] : object
        var line = try! JSONSerialization.data(withJSONObject: event, options: [.sortedKeys])
        line.append(UInt8(ascii: "\n"))
        for watcher in watchers {
            watcher.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: line))), promise: nil)
        }
    }

    static func status(_ code: Int, reason: String, message: String) -> [String: Any] {
        ["kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message]
    }

    private final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let box: Box

        init(box: Box) { self.box = box }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .head(let head) = unwrapInboundIn(data) else { return }
            let request = Request(uri: head.uri, authorization: head.headers.first(name: "authorization"))
            enum Answer {
                case status(Int, Data)
                case list(Data)
                case watch
            }
            let answer = box.state.withLockedValue { state -> Answer in
                state.requests.append(request)
                if !state.refusals.isEmpty {
                    let code = state.refusals.removeFirst()
                    return .status(code, Self.json(FakeKubernetesAPI.status(code, reason: code == 401 ? "Unauthorized" : "Forbidden", message: "refused by the test")))
                }
                if request.isWatch {
                    if let version = request.query("resourceVersion").flatMap(Int.init), version < state.forgottenBefore {
                        return .status(410, Self.json(FakeKubernetesAPI.status(410, reason: "Expired", message: "too old resource version: \(version)")))
                    }
                    state.watchers.append(context.channel)
                    return .watch
                }
                let items = state.slices.keys.sorted().map { String(decoding: state.slices[$0]!, as: UTF8.self) }
                let head = #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSliceList","metadata":{"resourceVersion":"\#(state.version)"},"items":["#
                return .list(Data((head + items.joined(separator: ",") + "]}").utf8))
            }
            switch answer {
            case .status(let code, let body):
                respond(context, status: HTTPResponseStatus(statusCode: code), body: body)
            case .list(let body):
                respond(context, status: .ok, body: body)
            case .watch:
                var headers = HTTPHeaders([("content-type", "application/json"), ("transfer-encoding", "chunked")])
                headers.add(name: "cache-control", value: "no-cache")
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            let channel = context.channel
            box.state.withLockedValue { $0.watchers.removeAll { $0 === channel } }
            context.fireChannelInactive()
        }

        static func json(_ object: [String: Any]) -> Data {
            try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        }

        private func respond(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body data: Data) {
            let headers = HTTPHeaders([("content-type", "application/json"), ("content-length", "\(data.count)")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
