import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1
import NIOPosix

/// The end of one upstream connection: parses its responses (``HTTPResponseParser``), hands
/// their parts to the exchange that owns the connection, and holds back reads while the client
/// cannot take more (backpressure).
final class UpstreamHandler: ChannelDuplexHandler, Upstream {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let address: EndpointAddress
    /// The endpoint's ``EndpointState/slot``, where the pool keeps it while idle.
    let slot: Int
    /// The loop's pool for connections made as this one was (plain, or with its TLS options).
    let pool: UpstreamPool
    /// Strong, as in ``DownstreamHandler``; the pool empties its lists when it closes them.
    private let loop: LoopContext
    private var context: ChannelHandlerContext?
    /// The exchange using this connection; nil while pooled.
    var exchange: ProxyExchange?
    var idleDeadline = NIODeadline.distantFuture
    private var reads = ReadGate()
    /// False once the upstream said `Connection: close`, a response was cut short, or the
    /// connection failed: such a connection never goes back to the pool.
    var keepAlive = true
    private var parser = HTTPResponseParser()
    /// Requests as bytes.
    private var output: HTTP1MessageWriter
    /// The pool's list for this endpoint, once the connection has been in it.
    var idleList: UpstreamPool.IdleList?
    /// The channel's, read once (see ``DownstreamHandler/allocator``).
    private var allocator = ByteBufferAllocator()
    /// Inside `parser.parse`, whose callbacks may close this connection: the parser must not
    /// be touched again until it returns.
    private var isParsing = false
    /// The upstream switched protocols (101): bytes go both ways as they come, unparsed.
    private(set) var isTunnel = false

    /// The service's pool settings when the connection was made (converted once, not on every
    /// return to the pool): how many idle connections its endpoint keeps, and for how long.
    let maxIdle: Int
    let poolIdleTimeout: TimeAmount

    init(endpoint: EndpointState, service: ServiceSettings, pool: UpstreamPool, loop: LoopContext) {
        self.address = endpoint.address
        self.slot = endpoint.slot
        self.pool = pool
        self.maxIdle = service.maxIdlePerEndpoint
        self.poolIdleTimeout = TimeAmount(service.poolIdleTimeout)
        self.loop = loop
        self.output = HTTP1MessageWriter(spare: loop.spareWriteBuffer)
    }

    /// `keepAlive` turns false when the connection closes, so no channel state is read here.
    var isReusable: Bool { keepAlive && context != nil }
    /// Kept from writability events rather than read from the channel on every body part.
    private(set) var isWritable = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        allocator = context.channel.allocator
        isWritable = context.channel.isWritable
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        isWritable = false
    }

    /// Gathers a request part's bytes; they go out with the next ``flush()``.
    /// `inout` only so that the caller's head is read in place rather than copied for the call.
    func writeHead(_ head: inout UpstreamRequestHead) {
        guard context != nil else { return }
        output.writeHead(head, allocator: allocator)
    }

    func writeBody(_ buffer: ByteBuffer) {
        guard let context else { return }
        output.writeBody(buffer, allocator: allocator, through: context)
    }

    func writeEnd() {
        guard context != nil else { return }
        output.writeEnd(nil, allocator: allocator)
    }

    func flush() {
        guard let context else { return }
        output.flush(through: context)
    }

    /// Bytes of the switched protocol, gathered until the next ``flush()``.
    func writeTunnelBytes(_ buffer: ByteBuffer) {
        guard let context else { return }
        output.writeBody(buffer, allocator: allocator, through: context)
    }

    func setReadsPaused(_ paused: Bool) {
        if reads.setPaused(paused) { context?.read() }
    }

    func close() {
        keepAlive = false
        context?.close(promise: nil)
    }

    func finished(reusable: Bool, now: NIODeadline) {
        if reusable { pool.release(self, now: now) } else { close() }
    }

    /// The connection closes with the request: nothing else to check.
    func timedOut() {}

    // MARK: Channel events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let current = exchange else {
            // Bytes on an idle connection: the upstream is confused; do not reuse it.
            close()
            return
        }
        let now = NIODeadline.now()
        current.upstreamRead(at: now)
        if isTunnel {
            current.tunnelFromUpstream(unwrapInboundIn(data))
            return
        }
        isParsing = true
        defer { isParsing = false }
        do {
            try parser.parse(unwrapInboundIn(data), method: current.method, requestID: current.requestID, upgrading: current.isUpgrading) {
                part in
                // Every part read here answers the exchange that was using the connection when
                // the read began; once it lets go, the rest answers nothing. (Compared rather
                // than bound: binding retained and released the exchange for each part.)
                guard exchange === current else {
                    // More than the response: the rest is not for anyone.
                    close()
                    return false
                }
                switch part {
                case .head(let head, let keepAlive):
                    if !keepAlive { self.keepAlive = false }
                    current.upstreamReceivedHead(head)
                case .body(let buffer):
                    current.upstreamReceivedBody(buffer)
                case .end(let trailers, let followedByBytes):
                    // Bytes after the response answer nothing: the connection must not go back
                    // to the pool, where they would be read as the next request's response.
                    if followedByBytes { keepAlive = false }
                    current.upstreamReceivedEnd(trailers, at: now)
                case .switched(let rest):
                    isTunnel = true
                    keepAlive = false
                    output.startTunnel()
                    if rest.readableBytes > 0 { current.tunnelFromUpstream(rest) }
                }
                return true
            }
        } catch {
            errorCaught(context: context, error: error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        exchange?.upstreamReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        isWritable = context.channel.isWritable
        exchange?.upstreamWritabilityChanged(isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        keepAlive = false
        // A body without framing ends with the connection (unless gantry is the one closing
        // it, from inside the parser's callback).
        if !isTunnel, !isParsing, parser.endOfInput(), let exchange { exchange.upstreamReceivedEnd(nil, at: .now()) }
        if let exchange {
            self.exchange = nil
            exchange.upstreamClosed(error: nil)
        } else {
            pool.remove(self)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        keepAlive = false
        if let exchange {
            self.exchange = nil
            exchange.upstreamClosed(error: error)
        }
        // The socket failed: NIO closes the channel itself (``HTTP1Connection``'s reason).
        if error is IOError { return }
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if reads.admitsRead() { context.read() }
    }
}
