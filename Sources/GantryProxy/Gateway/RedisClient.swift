import GantryCore
import NIOCore
import NIOPosix

/// A small Redis client (RESP2) for the shared rate-limit store: one pipelined connection per
/// event loop, commands answered in order, reconnected on the next command after a failure.
/// No Swift Redis client is in our package set, so this one is written here; it speaks only
/// what gantry needs (EVALSHA/EVAL with integer-array answers, and errors).
final class RedisClient {
    typealias Value = RedisValue

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private let eventLoop: any EventLoop
    private let host: String
    private let port: Int
    private var channel: (any Channel)?
    private var connecting: EventLoopFuture<any Channel>?

    init(eventLoop: any EventLoop, host: String, port: Int) {
        self.eventLoop = eventLoop
        self.host = host
        self.port = port
    }

    /// Sends one command; the future fails on connection problems and times out after `timeout`.
    func send(_ arguments: [String], timeout: TimeAmount) -> EventLoopFuture<Value> {
        let promise = eventLoop.makePromise(of: Value.self)
        let deadline = eventLoop.scheduleTask(in: timeout) {
            promise.fail(Failure(description: "Redis did not answer within \(timeout)"))
        }
        promise.futureResult.whenComplete { _ in deadline.cancel() }
        connection().whenComplete { result in
            switch result {
            case .success(let channel):
                channel.writeAndFlush(RedisHandler.Outbound(arguments: arguments, promise: promise)).whenFailure { promise.fail($0) }
            case .failure(let error):
                promise.fail(error)
            }
        }
        return promise.futureResult
    }

    private func connection() -> EventLoopFuture<any Channel> {
        if let channel, channel.isActive { return eventLoop.makeSucceededFuture(channel) }
        if let connecting { return connecting }
        let future = ClientBootstrap(group: eventLoop)
            .connectTimeout(.milliseconds(500))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RedisHandler()) }
            }
            .connect(host: host, port: port)
        connecting = future
        future.assumeIsolated().whenComplete { [self] result in
            connecting = nil
            if case .success(let channel) = result { self.channel = channel }
        }
        return future
    }

    func close() {
        channel?.close(promise: nil)
        channel = nil
    }
}

/// RESP framing: commands out as arrays of bulk strings, replies in, matched to their
/// promises in order.
final class RedisHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    struct Outbound {
        let arguments: [String]
        let promise: EventLoopPromise<RedisClient.Value>
    }

    private var waiting = CircularBuffer<EventLoopPromise<RedisClient.Value>>()
    private var buffer = ByteBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        waiting.append(command.promise)
        var out = context.channel.allocator.buffer(capacity: 64)
        out.writeString("*\(command.arguments.count)\r\n")
        for argument in command.arguments {
            out.writeString("$\(argument.utf8.count)\r\n")
            out.writeString(argument)
            out.writeString("\r\n")
        }
        context.write(wrapOutboundOut(out), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while true {
            var view = buffer
            guard let value = Self.parse(&view) else { break }
            buffer = view
            waiting.popFirst()?.succeed(value)
        }
        buffer.discardReadBytes()
    }

    func channelInactive(context: ChannelHandlerContext) {
        while let promise = waiting.popFirst() { promise.fail(RedisClient.Failure(description: "the Redis connection closed")) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// One complete reply from the front of `buffer`, or nil when more bytes are needed.
    static func parse(_ buffer: inout ByteBuffer) -> RedisClient.Value? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), let line = readLine(&buffer) else { return nil }
        let text = String(line.dropFirst())
        switch type {
        case UInt8(ascii: "+"): return .simple(text)
        case UInt8(ascii: "-"): return .error(text)
        case UInt8(ascii: ":"): return Int(text).map(RedisClient.Value.integer)
        case UInt8(ascii: "$"):
            guard let length = Int(text) else { return nil }
            if length < 0 { return .bulk(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readString(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .bulk(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(text) else { return nil }
            var items: [RedisClient.Value] = []
            for _ in 0..<max(0, count) {
                guard let item = parse(&buffer) else { return nil }
                items.append(item)
            }
            return .array(items)
        default:
            return .error("unexpected reply")
        }
    }

    private static func readLine(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let end = view.firstIndex(of: UInt8(ascii: "\r")), end + 1 < view.endIndex, view[end + 1] == UInt8(ascii: "\n") else {
            return nil
        }
        let line = buffer.readString(length: end - view.startIndex)
        buffer.moveReaderIndex(forwardBy: 2)
        return line
    }
}
