import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP2

/// One HTTP/2 connection to an endpoint of a service whose `protocol` is `h2c` or `h2`: many
/// requests at once, each on a stream of its own (``HTTP2UpstreamStream``), as Envoy's
/// upstream HTTP/2 codec and nginx's `grpc_pass` keep them.
///
/// It takes streams up to the lower of the service's `maxConcurrentStreams` and the endpoint's
/// `SETTINGS_MAX_CONCURRENT_STREAMS`; the pool opens another connection past that, rather than
/// queueing requests behind a full one. A GOAWAY takes it out of the pool: the streams the
/// endpoint names as processed finish, NIO ends those above with REFUSED_STREAM (never seen by
/// the endpoint, so the exchange tries them again whatever their method), and the connection
/// closes when its last stream has.
final class HTTP2UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    typealias StreamOpened = (Result<HTTP2UpstreamStream, any Error>) -> Void

    private enum State {
        /// Connecting (and for `h2`, handshaking): streams asked for meanwhile wait.
        case connecting([StreamOpened])
        case ready(NIOHTTP2Handler.StreamMultiplexer)
        case closed
    }

    let address: EndpointAddress
    let slot: Int
    let pool: HTTP2UpstreamPool
    /// `http` or `https`, for the requests' `:scheme`.
    let scheme: String
    private let loop: LoopContext
    private var state = State.connecting([])
    private var context: ChannelHandlerContext?
    /// The service's limit; the endpoint's SETTINGS may lower it.
    private let maxStreams: Int
    private var peerMaxStreams = Int.max
    /// Streams open or being opened.
    private(set) var streams = 0
    /// A GOAWAY came, or the pool let the connection go: it takes no new stream.
    private(set) var isRetiring = false
    /// When the connection, without streams, has been idle for the service's pool idle timeout.
    private(set) var idleDeadline = NIODeadline.distantFuture
    private let poolIdleTimeout: TimeAmount

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
        // NIO ends a connection's streams before its own `channelInactive`: their retries
        // must not come back to it.
        case .ready: if context?.channel.isActive != true { return false }
        case .connecting: break
        }
        return streams < min(maxStreams, peerMaxStreams)
    }

    /// The last stream a GOAWAY said the endpoint processed: those above it were not.
    private(set) var goAwayLastStream: HTTP2StreamID?
    /// A PING sent to learn whether the endpoint is still there, until its answer.
    private var liveness: HTTP2PingData?
    private var connectTimeout = TimeAmount.seconds(2)

    /// The window gantry reads responses with: larger than HTTP/2's 64 KiB default, so that one
    /// stream's body is not held to a round trip per 64 KiB.
    static let streamWindow = 1 << 18
    static let connectionWindow = 1 << 20

    /// Connects to `socketAddress`; streams asked for meanwhile open once it is up.
    func connect(to socketAddress: SocketAddress, endpoint: EndpointState, security: UpstreamSecurity?, timeout: TimeAmount, outlier: OutlierDetection) {
        let bound = NIOLoopBound(self, eventLoop: loop.eventLoop)
        connectTimeout = timeout
        var connectionSettings = NIOHTTP2Handler.ConnectionConfiguration()
        connectionSettings.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 0),  // pushes only: none
            HTTP2Setting(parameter: .initialWindowSize, value: Self.streamWindow),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
        ]
        connectionSettings.targetWindowSize = Self.connectionWindow
        var streamSettings = NIOHTTP2Handler.StreamConfiguration()
        streamSettings.targetWindowSize = Self.streamWindow
        let eventLoop = loop.eventLoop
        let (connectionConfiguration, streamConfiguration) = (connectionSettings, streamSettings)
        SocketConnector.open(to: socketAddress, tls: security, timeout: timeout, on: eventLoop) { pipeline in
            let http2 = NIOHTTP2Handler(
                mode: .client, eventLoop: eventLoop, connectionConfiguration: connectionConfiguration, streamConfiguration: streamConfiguration
            ) { channel in
                channel.close()  // a pushed stream: refused (push is off)
            }
            try pipeline.addHandler(http2)
            try pipeline.addHandler(bound.value)
            bound.value.multiplexer = try http2.syncMultiplexer()
        }
        .assumeIsolated()
        .whenComplete { [self] result in
            switch result {
            case .success(let channel):
                endpoint.connectSucceeded()
                connected = true
                becomeReady()
                // An endpoint that never sends its SETTINGS is as good as one never reached.
                let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
                channel.eventLoop.scheduleTask(in: timeout) {
                    if case .connecting = bound.value.state { channel.close(promise: nil) }
                }
            case .failure(let error):
                if endpoint.connectFailed(now: NIODeadline.now().uptimeNanoseconds, policy: outlier) { loop.metrics.add(.outlierEjections) }
                let waiting = self.waiting
                state = .closed
                pool.remove(self)
                fail(waiting, error)
            }
        }
    }

    /// Set once NIO's handler is in the pipeline; streams are made through it.
    private var multiplexer: NIOHTTP2Handler.StreamMultiplexer?
    private var connected = false
    private var settingsReceived = false

    /// Streams are opened once the connection is up and the endpoint's first SETTINGS have
    /// said how many it takes (RFC 9113 §3.4 lets a client wait for them; it costs nothing, as
    /// they come in the first read): the streams waiting beyond that go to another connection
    /// (``Overflow``), rather than be refused or queued behind this one's.
    private func becomeReady() {
        guard connected, settingsReceived, case .connecting(let waiting) = state, let multiplexer else { return }
        state = .ready(multiplexer)
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
                open(on: multiplexer, opened)
            } else {
                streams -= 1
                opened(.failure(Overflow()))
            }
        }
    }

    /// The endpoint takes fewer streams on a connection than were waiting for this one (or the
    /// connection closed as a stream was asked of it): the request asks the pool again
    /// (``ProxyExchange``), without counting a failed attempt.
    struct Overflow: Error {}

    /// The endpoint's SETTINGS allow no stream (`SETTINGS_MAX_CONCURRENT_STREAMS` 0).
    struct NoStreamsAllowed: Error, CustomStringConvertible {
        var description: String { "the endpoint allows no stream (SETTINGS_MAX_CONCURRENT_STREAMS 0)" }
    }

    private var waiting: [StreamOpened] {
        if case .connecting(let waiting) = state { return waiting }
        return []
    }

    private func fail(_ waiting: [StreamOpened], _ error: any Error) {
        streams -= waiting.count
        for opened in waiting { opened(.failure(error)) }
    }

    /// A stream for one request; `opened` is called on the loop once it can be written to (or
    /// with why not).
    func openStream(_ opened: @escaping StreamOpened) {
        streams += 1
        idleDeadline = .distantFuture
        switch state {
        case .connecting(var waiting):
            state = .closed  // not to copy the list as it grows
            waiting.append(opened)
            state = .connecting(waiting)
        case .ready(let multiplexer):
            guard context?.channel.isActive == true else {
                streams -= 1
                state = .closed
                pool.remove(self)
                opened(.failure(Overflow()))
                return
            }
            open(on: multiplexer, opened)
        case .closed:
            streams -= 1
            opened(.failure(ChannelError.ioOnClosedChannel))
        }
    }

    private func open(on multiplexer: NIOHTTP2Handler.StreamMultiplexer, _ opened: @escaping StreamOpened) {
        let stream = HTTP2UpstreamStream(connection: self)
        let bound = NIOLoopBound(stream, eventLoop: loop.eventLoop)
        multiplexer.createStreamChannel { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
        }
        .assumeIsolated()
        .whenComplete { result in
            switch result {
            case .success: opened(.success(stream))
            case .failure(let error):
                stream.letGo()
                opened(.failure(error))
            }
        }
    }

    /// A stream has closed (``HTTP2UpstreamStream`` says so once).
    func streamClosed() {
        streams -= 1
        guard streams == 0 else { return }
        if isRetiring {
            context?.close(promise: nil)
        } else {
            idleDeadline = .now() + poolIdleTimeout
        }
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
        switch unwrapInboundIn(data).payload {
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams { peerMaxStreams = setting.value }
            if !settingsReceived {
                settingsReceived = true
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

    func channelInactive(context: ChannelHandlerContext) {
        isRetiring = true
        let waiting = self.waiting
        state = .closed
        pool.remove(self)
        fail(waiting, ChannelError.eof)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A stream's errors reach its stream too (NIO has reset it). Others may be NIO's
        // connection errors, for which it has sent GOAWAY: the connection takes no new stream
        // and closes when its last ends, or when the endpoint closes it.
        if HTTP2ConnectionHandler.isStreamError(error) || error is NIOHTTP2Errors.StreamClosed || error is NIOHTTP2Errors.NoSuchStream {
            return
        }
        pool.remove(self)
        retire()
    }
}
