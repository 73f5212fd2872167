import GantryHandover
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The authoritative server on the network: UDP and TCP on one address and port (RFC 1035
/// §4.2, RFC 7766). Every query is answered by ``DNSAuthority``; the zones can be replaced while
/// it runs (cluster IPs are only known once they are bound).
public final class DNSServer: Sendable {
    /// What a TCP client may hold (RFC 7766 §6.2.3, §10): a connection must bring each whole
    /// message within `messageTimeout` of its first byte, closes after `idleTimeout` without
    /// one, and connections are capped in total and per client address.
    public struct TCPLimits: Sendable {
        public var maxConnections = 1000
        public var maxConnectionsPerClient = 32
        public var idleTimeout = TimeAmount.seconds(10)
        public var messageTimeout = TimeAmount.seconds(5)

        public init() {}
    }

    private let authority: NIOLockedValueBox<DNSAuthority>
    private let channels = NIOLockedValueBox<[any Channel]>([])
    private let group: any EventLoopGroup
    let limits: TCPLimits
    /// Open TCP connections by client address, and their total.
    private let connections = NIOLockedValueBox<(total: Int, byClient: [String: Int])>((0, [:]))

    public init(authority: DNSAuthority, group: any EventLoopGroup, limits: TCPLimits = TCPLimits()) {
        self.authority = NIOLockedValueBox(authority)
        self.group = group
        self.limits = limits
    }

    public func replace(_ authority: DNSAuthority) {
        self.authority.withLockedValue { $0 = authority }
    }

    var current: DNSAuthority { authority.withLockedValue { $0 } }

    /// The TCP connections open now.
    public var tcpConnectionCount: Int { connections.withLockedValue { $0.total } }

    /// Counts a new TCP connection from `client`, or refuses it when a cap is reached.
    func admit(_ client: String) -> Bool {
        connections.withLockedValue { state in
            guard state.total < limits.maxConnections, state.byClient[client, default: 0] < limits.maxConnectionsPerClient else { return false }
            state.total += 1
            state.byClient[client, default: 0] += 1
            return true
        }
    }

    func release(_ client: String) {
        connections.withLockedValue { state in
            state.total -= 1
            let left = state.byClient[client, default: 1] - 1
            state.byClient[client] = left > 0 ? left : nil
        }
    }

    /// Binds UDP and TCP; returns the port (the system's choice when `port` is 0, the same for both).
    public func start(host: String, port: Int) async throws -> Int {
        // Sockets made by ``Handover`` (and inherited from the gantry this one takes over from,
        // when there is one), handed to NIO bound.
        let tcpSocket = try Handover.shared.listeningSocket(named: "dns/tcp", host: host, port: port, kind: .stream, backlog: 128)
        let tcp: any Channel
        do {
            tcp = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DNSStreamHandler(server: self))
                    }
                }
                .withBoundSocket(tcpSocket.descriptor).get()
        } catch {
            Handover.shared.discard(tcpSocket)
            throw error
        }
        tcp.closeFuture.whenComplete { _ in Handover.shared.forget(tcpSocket.token) }
        let boundPort = tcp.localAddress?.port ?? port
        let udp: any Channel
        do {
            let udpSocket = try Handover.shared.listeningSocket(named: "dns/udp", host: host, port: boundPort, kind: .datagram)
            do {
                udp = try await DatagramBootstrap(group: group)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(DNSDatagramHandler(server: self)) }
                    }
                    .withBoundSocket(udpSocket.descriptor).get()
            } catch {
                Handover.shared.discard(udpSocket)
                throw error
            }
            udp.closeFuture.whenComplete { _ in Handover.shared.forget(udpSocket.token) }
        } catch {
            try? await tcp.close()
            throw error
        }
        channels.withLockedValue { $0 = [tcp, udp] }
        return boundPort
    }

    public func stop() async {
        for channel in channels.withLockedValue({ $0 }) { try? await channel.close() }
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

/// DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message preceded by its length in two bytes,
/// answered in order. The connection closes when a cap is reached at accept, when a message
/// does not arrive whole within the message deadline of its first byte (a client trickling a
/// byte every few seconds), when no message comes for the idle time, or on something the
/// authority will not answer.
final class DNSStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let server: DNSServer
    private var client: String?
    private var pending: ByteBuffer?
    private var deadline: Scheduled<Void>?
    /// The deadline running is a message's (from its first byte), not the idle one.
    private var isMessageDeadline = false

    init(server: DNSServer) {
        self.server = server
    }

    func channelActive(context: ChannelHandlerContext) {
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        guard server.admit(address) else {
            context.close(promise: nil)
            return
        }
        client = address
        arm(server.limits.idleTimeout, context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if let client = client.take() { server.release(client) }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        var buffer: ByteBuffer
        if var earlier = pending.take() {
            earlier.writeBuffer(&incoming)
            buffer = earlier
        } else {
            buffer = incoming
        }
        while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self), buffer.readableBytes >= 2 + Int(length) {
            isMessageDeadline = false  // this message came whole; the next one's runs from its own first byte
            buffer.moveReaderIndex(forwardBy: 2)
            let query = Array(buffer.readSlice(length: Int(length))!.readableBytesView)
            guard let answer = server.current.respond(to: query, transport: .tcp) else {
                context.close(promise: nil)
                return
            }
            var out = context.channel.allocator.buffer(capacity: answer.count + 2)
            out.writeInteger(UInt16(answer.count))
            out.writeBytes(answer)
            context.write(wrapOutboundOut(out), promise: nil)
        }
        // Part of a message: its deadline runs from now unless it is already running; none: idle.
        if buffer.readableBytes > 0 {
            if !isMessageDeadline { arm(server.limits.messageTimeout, context: context, message: true) }
            pending = buffer
        } else {
            arm(server.limits.idleTimeout, context: context)
        }
    }

    private func arm(_ timeout: TimeAmount, context: ChannelHandlerContext, message: Bool = false) {
        deadline?.cancel()
        isMessageDeadline = message
        let channel = context.channel
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
