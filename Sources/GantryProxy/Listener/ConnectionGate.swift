import NIOCore

/// The connection limits (total, per client address, new per second per client), checked
/// when a connection is accepted, before its channel is registered or has a handler: a flood
/// of connections, TLS or plain, is refused at the cost of an accept and a close. An admitted
/// connection is counted, and gives its slot back when its channel closes.
enum ConnectionGate {
    /// Counts the connection in, or says why it may not stay (its channel is then closed by
    /// NIO, which closes every accepted channel whose initializer fails).
    static func admit(_ channel: any Channel, loop: LoopContext) throws {
        let clientIP = channel.remoteAddress?.ipAddress ?? "unknown"
        if loop.connectionLimiter.admit(clientIP, now: NIODeadline.now().uptimeNanoseconds) != nil {
            loop.metrics.add(.connectionsRefused)
            throw ConnectionRefused()
        }
        loop.metrics.add(.downstreamConnections)
        loop.metrics.add(.activeConnections)
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            loop.connectionLimiter.release(clientIP)
            loop.metrics.subtract(.activeConnections)
        }
    }
}

/// A connection over the listener's limits, closed as it was accepted.
struct ConnectionRefused: Error {}
