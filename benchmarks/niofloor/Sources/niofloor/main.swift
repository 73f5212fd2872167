// niofloor PORT UPSTREAMS: the least a SwiftNIO proxy can spend per request, for comparison
// with gantry in the same benchmark run.
//
// A TCP relay on one event loop: each client connection gets its own upstream connection
// (the upstreams taken in turn, per connection), and bytes are copied both ways by one handler
// per side, flushed at the end of each read. No HTTP parsing, no routing, no headers: what
// remains is SwiftNIO's read and write path and the kernel's TCP work, which gantry pays too.
// It is not a proxy anyone should run (it cannot balance requests, only connections).
//
// niofloor PORT --answer: no upstream; each request head (up to its blank line) is answered
// with a fixed 200 on the same keep-alive connection. What a SwiftNIO server holds per idle
// connection (the channel, its pipeline, one handler and the receive buffer NIO keeps), read
// beside gantry's in tlsbench.py's idle10k scenario, with gantry's receive buffer sizes.
import NIOCore
import NIOPosix

final class Answerer: ChannelInboundHandler, @unchecked Sendable {  // confined to the one event loop
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let response = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    /// How much of a blank line ("\r\n\r\n") the last bytes read end with.
    private var matched = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        for byte in buffer.readableBytesView {
            let expected: UInt8 = matched % 2 == 0 ? 13 : 10
            matched = byte == expected ? matched + 1 : (byte == 13 ? 1 : 0)
            if matched == 4 {
                matched = 0
                context.write(wrapOutboundOut(Self.response), promise: nil)
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { context.flush() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

final class Relay: ChannelDuplexHandler, @unchecked Sendable {  // confined to the one event loop
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var partner: Relay?
    private(set) var context: ChannelHandlerContext?
    /// What the client sent before the upstream connection was up.
    var early: [ByteBuffer] = []

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let target = partner?.context {
            target.write(wrapOutboundOut(buffer), promise: nil)
        } else {
            early.append(buffer)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) { partner?.context?.flush() }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
        partner = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    /// Joins `upstream` to this (client) side and sends what arrived meanwhile.
    func join(_ upstream: Relay) {
        partner = upstream
        upstream.partner = self
        guard let target = upstream.context else { return }
        for buffer in early { target.write(wrapOutboundOut(buffer), promise: nil) }
        early = []
        target.flush()
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let port = Int(arguments[1]) else {
    print("usage: niofloor PORT HOST:PORT[,HOST:PORT...] | niofloor PORT --answer")
    exit(2)
}
if arguments[2] == "--answer" {
    let server = try ServerBootstrap(group: MultiThreadedEventLoopGroup(numberOfThreads: 1))
        .serverChannelOption(.backlog, value: 4096)
        .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
        .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Answerer()) } }
        .bind(host: "127.0.0.1", port: port)
        .wait()
    print("niofloor answering on 127.0.0.1:\(port)")
    try server.closeFuture.wait()
    exit(0)
}
let upstreams = try arguments[2].split(separator: ",").map { item in
    let parts = item.split(separator: ":")
    return try SocketAddress(ipAddress: String(parts[0]), port: Int(parts[1])!)
}
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
nonisolated(unsafe) var nextUpstream = 0  // one event loop: only its thread touches this

let server = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 4096)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        let client = Relay()
        let address = upstreams[nextUpstream % upstreams.count]
        nextUpstream += 1
        return channel.pipeline.addHandler(client).flatMap {
            ClientBootstrap(group: channel.eventLoop)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { upstreamChannel in upstreamChannel.pipeline.addHandler(Relay()) }
                .connect(to: address)
                .flatMap { upstreamChannel in upstreamChannel.pipeline.handler(type: Relay.self) }
                .map { upstream in client.join(upstream) }
        }
    }
    .bind(host: "127.0.0.1", port: port)
    .wait()
print("niofloor listening on 127.0.0.1:\(port)")
try server.closeFuture.wait()
