import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1
import Tracing

/// Everything one request gathers and decides, from its head to its last byte: the loop's
/// snapshot it took when it arrived, what the edge, the route and the policies made of it, how
/// its attempts upstream went, and what it cost. Its ``ProxyExchange`` owns it and starts the
/// next request with a new one; the access log, the metrics, the span and `Server-Timing` all
/// read this one value.
struct RequestContext {
    enum RequestSide {
        /// Not sent upstream yet: body parts wait in ``pending`` (reads are paused, so only what
        /// one read brought in is held).
        case buffering
        case streaming
        case complete
    }

    enum ResponseSide {
        case waiting
        case streaming
        case complete
    }

    // MARK: Arrival

    let id: RequestIdentifier
    let started: NIODeadline
    /// Seconds since 1970, read only when an access log will record it.
    let wallClock: Double
    /// Nil for bytes that were not a request.
    let method: HTTPMethod?
    let version: HTTPVersion
    /// Routes, policies, services and endpoints as they were when the head arrived: this
    /// request uses nothing else, whatever is installed meanwhile.
    let snapshot: LoopSnapshot
    var host = ""
    var path = ""
    /// The request's span, while spans are recorded.
    var span: (any Span)?
    /// The client asked for tracing and the file allows `Server-Timing`.
    var serverTiming = false

    // MARK: Route and gateway

    var route: RouteRule?
    /// The route's index and its service's, in ``snapshot``: read on every step of the request,
    /// without copying the route.
    var routeIndex = 0
    var serviceIndex = 0
    var upstreamHead: UpstreamRequestHead?
    /// The request carries a body (Content-Length > 0 or chunked); once sent it cannot be replayed.
    var hasBody = false
    var expectsContinue = false
    /// Changes to the client's response from the route's policies (rate-limit and CORS
    /// headers, transforms).
    /// The copy for the route's mirror, while the request's body is still coming.
    var mirror: RequestMirror?
    /// The protocol the request asks the upstream to switch to (`websocket`): the client's first
    /// choice, when its route allows it.
    var upgrade: String?
    /// When the upstream switched protocols (101): the connection relays bytes both ways since.
    var tunnelStarted: NIODeadline?
    /// For a WebSocket tunnel, where each direction's frames begin (from the client, from the
    /// upstream): gantry's own close frame goes only between two.
    var webSocketFrames: (fromClient: WebSocketFrameBoundary, fromUpstream: WebSocketFrameBoundary)?
    var responseEdits = HeaderEdits()
    /// The most request body the edge and the route's policies allow.
    var maxRequestBody: Int?
    /// A validate policy's JSON Schema: the body is read in full and checked before it goes on.
    var bodySchema: JSONSchema?
    /// The route's policies have all let the request through.
    var policiesPassed = false
    /// A gRPC call (HTTP/2, `application/grpc`): gantry's own answers are gRPC statuses.
    var isGRPC = false
    /// A gRPC call's deadline, from its `grpc-timeout`: the route's response timeout gives way
    /// to it, and when it passes, the call ends with DEADLINE_EXCEEDED.
    var callDeadline: NIODeadline?

    // MARK: Upstream

    var attempts = 0
    /// Endpoints tried before the current one; the current one is ``endpoint``. Kept apart so
    /// that a request answered at the first try allocates no list.
    var tried: [EndpointAddress] = []
    var endpoint: EndpointState?
    var upstream: (any Upstream)?
    /// For an HTTP/2 upstream: the body sent so far, until the response begins (see
    /// ``SentBody``); nil once it outgrew what is kept.
    var sentBody: SentBody?
    /// When the gateway was done with the request and the first endpoint was chosen.
    var gatewayDone: NIODeadline?
    var upstreamStarted: NIODeadline?
    var upstreamMs: Double?
    var responseDeadline = NIODeadline.distantFuture
    var lastActivity: NIODeadline

    // MARK: Relay

    var requestSide = RequestSide.buffering
    var responseSide = ResponseSide.waiting
    var requestEnded = false
    /// An array, not a `CircularBuffer`: that allocates sixteen slots up front, and most
    /// requests never wait with a body.
    var pending: [ByteBuffer] = []
    var sentContinue = false

    // MARK: Outcome

    var status = 0
    /// Why gantry answered itself or cut the exchange short; for a request that was tried again
    /// and then answered by an upstream, why the last failed attempt failed.
    var outcome: LocalReason?
    /// What the log adds to ``outcome``: why a TLS handshake with the upstream failed.
    var outcomeDetail: String?
    /// The log's and the span's `detail`: the outcome, and why when there is more to say.
    var detail: String? {
        guard let outcome else { return nil }
        return outcomeDetail.map { "\(outcome.label): \($0)" } ?? outcome.label
    }
    /// Gantry answered the request itself (``outcome`` says why).
    var answeredLocally = false
    var requestBytes = 0
    var responseBytes = 0
    var finished = false

    init(id: RequestIdentifier, started: NIODeadline, wallClock: Double, method: HTTPMethod?, version: HTTPVersion, snapshot: LoopSnapshot) {
        self.id = id
        self.started = started
        self.wallClock = wallClock
        self.method = method
        self.version = version
        self.snapshot = snapshot
        self.lastActivity = started
    }

    /// What an exchange holds between requests: an ended request on `snapshot`.
    static func ended(on snapshot: LoopSnapshot) -> RequestContext {
        var context = RequestContext(id: "", started: .uptimeNanoseconds(0), wallClock: 0, method: nil, version: .http1_1, snapshot: snapshot)
        context.finished = true
        return context
    }

    /// The route's settings in the request's snapshot, read in place (copied, the struct's
    /// fields were retained and released on every request).
    var settings: RouteSettings {
        _read { yield snapshot.runtime.routeSettings[routeIndex] }
    }

    /// The route's service in the request's snapshot.
    var cluster: UpstreamCluster { snapshot.clusters[serviceIndex] }

    var methodName: String { method?.rawValue ?? "-" }
}

/// The body a request has sent on an HTTP/2 stream, kept until the response begins: an
/// endpoint that refuses the stream (REFUSED_STREAM, or above a GOAWAY's last stream) never
/// processed it, and the request goes to another with the same bytes. Up to ``limit`` (Envoy's
/// retry buffer is as small); a larger body is not kept, and such a request is retried only as
/// the route's policy allows any other.
struct SentBody {
    static let limit = 64 * 1024
    private(set) var parts: [ByteBuffer]
    private var bytes: Int

    init?(_ parts: [ByteBuffer]) {
        self.parts = parts
        self.bytes = parts.reduce(0) { $0 + $1.readableBytes }
        if bytes > Self.limit { return nil }
    }

    /// False once the body is larger than is kept.
    mutating func append(_ part: ByteBuffer) -> Bool {
        bytes += part.readableBytes
        guard bytes <= Self.limit else { return false }
        parts.append(part)
        return true
    }
}
