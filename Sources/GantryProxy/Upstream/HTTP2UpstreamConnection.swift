import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP2

/// One HTTP/2 connection to an endpoint of a service whose `protocol` is `h2c` or `h2`: many
/// requests at once, each on a stream of its own (``HTTP2UpstreamStream``), as Envoy's
/// upstream HTTP/2 codec and nginx's `grpc_pass` keep them.
///
/// It works on NIO's frames directly, one handler for the connection, rather than a child
/// channel and pipeline per stream (NIO's multiplexer), which cost more than the request they
/// carried. So what the multiplexer did is here: stream ids are handed out in order, frames
/// go to their stream, and the windows the responses are read with are opened again as the
/// exchange takes the bytes (a stream whose client is slow keeps its window shut).
///
/// It takes streams up to the lower of the service's `maxConcurrentStreams` and the endpoint's
/// `SETTINGS_MAX_CONCURRENT_STREAMS`; the pool opens another connection past that, rather than
/// queueing requests behind a full one. A GOAWAY takes it out of the pool: the streams the
/// endpoint names as processed finish, those above it end unprocessed (the exchange sends them
/// again, whatever their method), and the connection closes when its last stream has.
final class HTTP2UpstreamConnection: ChannelInboundHandler, HTTP2FrameWriter {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    typealias StreamOpened = (Result<HTTP2UpstreamStream, any Error>) -> Void

    private enum State {
        /// Connecting (and for `h2`, handshaking), then waiting for the endpoint's SETTINGS:
        /// streams asked for meanwhile wait.
        case connecting([StreamOpened])
        case ready
        case closed
    }

    let address: EndpointAddress
    let slot: Int
    let pool: HTTP2UpstreamPool
    /// `http` or `https`, for the requests' `:scheme`.
    let scheme: String
    private let loop: LoopContext
    var loopContext: LoopContext { loop }
    var flushDue = false
    private var state = State.connecting([])
    private(set) var context: ChannelHandlerContext?
    /// The service's limit; the endpoint's SETTINGS may lower it.
    private let maxStreams: Int
    private var peerMaxStreams = Int.max
    /// Streams open or being opened.
    private(set) var streams = 0
    /// Streams that have sent their HEADERS, by id.
    private var open: [HTTP2StreamID: HTTP2UpstreamStream] = [:]
    private var nextStreamID = HTTP2StreamID(1)
    /// A GOAWAY came, or the pool let the connection go: it takes no new stream.
    private(set) var isRetiring = false
    /// When the connection, without streams, has been idle for the service's pool idle timeout.
    private(set) var idleDeadline = NIODeadline.distantFuture
    private let poolIdleTimeout: TimeAmount
    /// The last stream a GOAWAY said the endpoint processed: those above it were not.
    private(set) var goAwayLastStream: HTTP2StreamID?
    /// A PING sent to learn whether the endpoint is still there, until its answer.
    private var liveness: HTTP2PingData?
    private var connectTimeout = TimeAmount.seconds(2)
    private var connected = false
    private var settingsReceived = false
    /// Response bytes taken off the connection's window and not yet given back.
    private var connectionBytesToReturn = 0

    init(endpoint: EndpointState, service: ServiceSettings, pool: HTTP2UpstreamPool, loop: LoopContext) {
        self.address = endpoint.address
        self.slot = endpoint.slot
        self.pool = pool
        self.scheme = service.tls == nil ? "http" : "https"
        self.loop = loop
        self.maxStreams = service.maxConcurrentStreams
        self.poolIdleTimeout = TimeAmount(service.poolIdleTimeout)
    }

    /// Room for one more stream.
    var hasRoom: Bool {
        guard !isRetiring else { return false }
        switch state {
        case .closed: return false
        case .ready: if context?.channel.isActive != true { return false }
        case .connecting: break
        }
        return streams < min(maxStreams, peerMaxStreams)
    }

    /// The window gantry reads each response with: larger than HTTP/2's 64 KiB default, so
    /// that a body is not held to a round trip per 64 KiB. Given back once half is used.
    static let streamWindow = 1 << 18
    static let connectionWindow = 1 << 20

    /// Connects to `socketAddress`; streams asked for meanwhile open once it is up.
    func connect(to socketAddress: SocketAddress, endpoint: EndpointState, security: UpstreamSecurity?, timeout: TimeAmount, outlier: OutlierDetection) {
        let bound = NIOLoopBound(self, eventLoop: loop.eventLoop)
        connectTimeout = timeout
        SocketConnector.open(to: socketAddress, tls: security, timeout: timeout, on: loop.eventLoop) { pipeline in
            let settings = [
                HTTP2Setting(parameter: .enablePush, value: 0),
                HTTP2Setting(parameter: .maxConcurrentStreams, value: 0),  // pushes only: none
                HTTP2Setting(parameter: .initialWindowSize, value: Self.streamWindow),
                HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
            ]
            try pipeline.addHandler(HTTP2WriteCoalescer())  // over TLS and in the clear alike
            // Without a multiplexer: the frames come to this handler. Header blocks are checked
            // by ``HTTP2UpstreamStream`` as they arrive (``HTTP2Fields/isValidResponse``), not by
            // NIO both ways.
            try pipeline.addHandler(NIOHTTP2Handler(mode: .client, initialSettings: settings, headerBlockValidation: .disabled))
            try pipeline.addHandler(bound.value)
        }
        .assumeIsolated()
        .whenComplete { [self] result in
            switch result {
            case .success(let channel):
                endpoint.answered()
                connected = true
                becomeReady()
                // An endpoint that never sends its SETTINGS is as good as one never reached.
                let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
                channel.eventLoop.scheduleTask(in: timeout) {
                    if case .connecting = bound.value.state { channel.close(promise: nil) }
                }
            case .failure(let error):
                if endpoint.failedLocally(now: NIODeadline.now().uptimeNanoseconds, policy: outlier) { loop.metrics.add(.outlierEjections) }
                let waiting = self.waiting
                state = .closed
                pool.remove(self)
                fail(waiting, error)
            }
        }
    }

    private var waiting: [StreamOpened] {
        if case .connecting(let waiting) = state { return waiting }
        return []
    }

    private func fail(_ waiting: [StreamOpened], _ error: any Error) {
        streams -= waiting.count
        for opened in waiting { opened(.failure(error)) }
    }

    /// Streams are opened once the connection is up and the endpoint's first SETTINGS have
    /// said how many it takes (RFC 9113 §3.4 lets a client wait for them; it costs nothing, as
    /// they come in the first read): the streams waiting beyond that go to another connection
    /// (``Overflow``), rather than be refused or queued behind this one's.
    private func becomeReady() {
        guard connected, settingsReceived, case .connecting(let waiting) = state else { return }
        state = .ready
        let room = max(0, min(maxStreams, peerMaxStreams))
        guard room > 0 else {
            // An endpoint that takes no stream at all is refusing work: each request fails
            // this attempt, rather than opening connection after connection.
            pool.remove(self)
            retire()
            fail(waiting, NoStreamsAllowed())
            return
        }
        for (index, opened) in waiting.enumerated() {
            if index < room {
                opened(.success(HTTP2UpstreamStream(connection: self)))
            } else {
                streams -= 1
                opened(.failure(Overflow()))
            }
        }
        if streams == 0 { idleDeadline = .now() + poolIdleTimeout }
    }

    /// The endpoint takes fewer streams on a connection than were waiting for this one (or the
    /// connection closed as a stream was asked of it): the request asks the pool again
    /// (``ProxyExchange``), without counting a failed attempt.
    struct Overflow: Error {}

    /// The endpoint's SETTINGS allow no stream (`SETTINGS_MAX_CONCURRENT_STREAMS` 0).
    struct NoStreamsAllowed: Error, CustomStringConvertible {
        var description: String { "the endpoint allows no stream (SETTINGS_MAX_CONCURRENT_STREAMS 0)" }
    }

    /// A stream for one request; `opened` is called on the loop once it can be written to (at
    /// once when the connection is ready), or with why not.
    func openStream(_ opened: @escaping StreamOpened) {
        streams += 1
        idleDeadline = .distantFuture
        switch state {
        case .connecting(var waiting):
            state = .closed  // not to copy the list as it grows
            waiting.append(opened)
            state = .connecting(waiting)
        case .ready:
            guard context?.channel.isActive == true else {
                streams -= 1
                state = .closed
                pool.remove(self)
                opened(.failure(Overflow()))
                return
            }
            opened(.success(HTTP2UpstreamStream(connection: self)))
        case .closed:
            streams -= 1
            opened(.failure(ChannelError.ioOnClosedChannel))
        }
    }

    // MARK: From the streams

    /// The id for a stream about to send its HEADERS: ids go out in increasing order (RFC 9113
    /// §5.1.1), so one is handed out only as its HEADERS are written.
    func assignID(to stream: HTTP2UpstreamStream) -> HTTP2StreamID {
        let id = nextStreamID
        nextStreamID = HTTP2StreamID(Int32(id) + 2)
        open[id] = stream
        // Ids run out after about a billion streams: a new connection takes over.
        if Int32(nextStreamID) > Int32.max - 2 { retire() }
        return id
    }

    /// A stream has closed (``HTTP2UpstreamStream`` says so once).
    func streamClosed(_ id: HTTP2StreamID?) {
        if let id { open[id] = nil }
        streams -= 1
        guard streams == 0 else { return }
        if isRetiring {
            context?.close(promise: nil)
        } else {
            idleDeadline = .now() + poolIdleTimeout
        }
    }

    /// Bytes a stream's exchange has taken: the connection's window is given back once half of
    /// it is used, whatever the streams do with theirs (each stream's own window is what holds
    /// a slow one back).
    func returnToConnectionWindow(_ bytes: Int) {
        connectionBytesToReturn += bytes
        guard connectionBytesToReturn >= Self.connectionWindow / 2 else { return }
        write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: connectionBytesToReturn)))
        connectionBytesToReturn = 0
    }

    /// A request on this connection timed out: a PING tells a slow stream from an endpoint
    /// that is gone (a dead host, a partition), whose connection would otherwise keep taking
    /// streams until TCP gave up. No answer within the connect timeout closes the connection.
    func checkLiveness() {
        guard liveness == nil, let context, context.channel.isActive else { return }
        let ping = HTTP2PingData(withInteger: UInt64.random(in: 1...UInt64.max))
        liveness = ping
        context.writeAndFlush(wrapOutboundOut(HTTP2Frame(streamID: .rootStream, payload: .ping(ping, ack: false))), promise: nil)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: connectTimeout) {
            let connection = bound.value
            guard connection.liveness == ping else { return }
            connection.pool.remove(connection)
            connection.context?.close(promise: nil)
        }
    }

    /// Takes no new stream, and closes once the open ones have ended.
    func retire() {
        isRetiring = true
        if streams == 0 { context?.close(promise: nil) }
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.streamID == .rootStream else {
            if let stream = open[frame.streamID] {
                stream.receive(frame.payload)
            } else if case .data(let data) = frame.payload {
                // For a stream gantry has let go of: its bytes still count against the
                // connection's window.
                returnToConnectionWindow(StreamFlow.size(of: data))
            }
            return
        }
        switch frame.payload {
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams { peerMaxStreams = setting.value }
            if !settingsReceived {
                settingsReceived = true
                // The connection's window beyond HTTP/2's initial 64 KiB (NIO's preface has
                // gone by now: nothing may precede it).
                write(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: Self.connectionWindow - 65_535)))
                context.flush()
                becomeReady()
            }
        case .goAway(let lastStream, _, _):
            // The endpoint takes no new stream; NIO ends those it did not process (with
            // CANCEL: the streams compare their ids with this one to know they were refused).
            goAwayLastStream = min(goAwayLastStream ?? lastStream, lastStream)
            pool.remove(self)
            retire()
        case .ping(let data, ack: true):
            if data == liveness { liveness = nil }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        for stream in open.values { stream.readComplete() }
        flush()  // window updates given back during the read
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent {
            open[closed.streamID]?.closed(reason: closed.reason)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let writable = context.channel.isWritable
        for stream in open.values { stream.connectionWritabilityChanged(writable) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        isRetiring = true
        let waiting = self.waiting
        state = .closed
        pool.remove(self)
        fail(waiting, ChannelError.eof)
        for stream in Array(open.values) { stream.closed(reason: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream's errors name it (NIO has reset it; its close follows). Others are NIO's
        // connection errors, for which it has sent GOAWAY: the connection takes no new stream
        // and closes when its last ends, or when the endpoint closes it.
        if let streamError = error as? NIOHTTP2Errors.StreamError {
            open[streamError.streamID]?.failed(streamError.baseError)
            return
        }
        // A frame for a stream that has just closed (a reset crossing the endpoint's end).
        if error is NIOHTTP2Errors.StreamClosed || error is NIOHTTP2Errors.NoSuchStream { return }
        pool.remove(self)
        retire()
    }
}
