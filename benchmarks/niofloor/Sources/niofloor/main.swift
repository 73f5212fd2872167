// niofloor PORT UPSTREAMS: the least a SwiftNIO proxy can spend per request, for comparison
// with gantry in the same benchmark run.
//
// A TCP relay on one event loop: each client connection gets its own upstream connection
// (the upstreams taken in turn, per connection), and bytes are copied both ways by one handler
// per side, flushed at the end of each read. No HTTP parsing, no routing, no headers: what
// remains is SwiftNIO's read and write path and the kernel's TCP work, which gantry pays too.
// It is not a proxy anyone should run (it cannot balance requests, only connections).
import NIOCore
import NIOPosix

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
    print("usage: niofloor PORT HOST:PORT[,HOST:PORT...]")
    exit(2)
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
