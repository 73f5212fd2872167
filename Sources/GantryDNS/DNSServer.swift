import NIOCore
import NIOPosix
import Synchronization

/// The authoritative server on the network: UDP and TCP on one address and port (RFC 1035
/// §4.2, RFC 7766). Every query is answered by ``DNSAuthority``; the zones can be replaced while
/// it runs (cluster IPs are only known once they are bound).
public final class DNSServer: Sendable {
    private let authority: Mutex<DNSAuthority>
    private let channels = Mutex<[any Channel]>([])
    private let group: any EventLoopGroup

    /// Idle TCP connections are closed after this (RFC 7766 §6.2.3 suggests seconds, not minutes).
    static let tcpIdleTimeout = TimeAmount.seconds(10)

    public init(authority: DNSAuthority, group: any EventLoopGroup) {
        self.authority = Mutex(authority)
        self.group = group
    }

    public func replace(_ authority: DNSAuthority) {
        self.authority.withLock { $0 = authority }
    }

    var current: DNSAuthority { authority.withLock { $0 } }

    /// Binds UDP and TCP; returns the port (the system's choice when `port` is 0, the same for both).
    public func start(host: String, port: Int) async throws -> Int {
        let tcp = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: Self.tcpIdleTimeout))
                    try sync.addHandler(ByteToMessageHandler(DNSLengthPrefixDecoder()))
                    try sync.addHandler(DNSStreamHandler(server: self))
                }
            }
            .bind(host: host, port: port).get()
        let boundPort = tcp.localAddress?.port ?? port
        let udp: any Channel
        do {
            udp = try await DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DNSDatagramHandler(server: self)) }
                }
                .bind(host: host, port: boundPort).get()
        } catch {
            try? await tcp.close()
            throw error
        }
        channels.withLock { $0 = [tcp, udp] }
        return boundPort
    }

    public func stop() async {
        for channel in channels.withLock({ $0 }) { try? await channel.close() }
    }
}

/// One UDP datagram in, at most one out. A query that does not decode is answered FORMERR or
/// dropped by the authority; nothing here can throw.
final class DNSDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let server: DNSServer

    init(server: DNSServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let query = Array(envelope.data.readableBytesView)
        guard let answer = server.current.respond(to: query, transport: .udp) else { return }
        let reply = AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: context.channel.allocator.buffer(bytes: answer))
        context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // An ICMP error for an earlier reply (the client went away) must not stop the server.
    }
}

/// DNS over TCP: each message is preceded by its length in two bytes (RFC 1035 §4.2.2).
struct DNSLengthPrefixDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
            buffer.readableBytes >= 2 + Int(length)
        else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 2)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

/// Answers each framed query on a TCP connection, in order; closes a connection that sends
/// something the authority will not answer, or that stays idle.
final class DNSStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let server: DNSServer

    init(server: DNSServer) {
        self.server = server
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let query = Array(unwrapInboundIn(data).readableBytesView)
        guard let answer = server.current.respond(to: query, transport: .tcp) else {
            context.close(promise: nil)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: answer.count + 2)
        buffer.writeInteger(UInt16(answer.count))
        buffer.writeBytes(answer)
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
