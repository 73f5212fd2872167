import GantryCore
import NIOCore

/// One loop's HTTP/2 connections to upstream endpoints, for the services that speak HTTP/2
/// with the same TLS options (or none): a request takes a stream on a connection to its
/// endpoint that has room, and a new connection is made only when none has.
final class HTTP2UpstreamPool {
    /// By ``EndpointState/slot``.
    private var connections: [Int: [HTTP2UpstreamConnection]] = [:]
    private var closed = false

    /// A connection to `endpoint` with room for another stream, connecting or up.
    func connection(to endpoint: EndpointState) -> HTTP2UpstreamConnection? {
        connections[endpoint.slot]?.first { $0.hasRoom && $0.address == endpoint.address }
    }

    /// Keeps a new connection, for the next requests to its endpoint; none when the pool is out
    /// of use (its connection then carries its one request and closes).
    func add(_ connection: HTTP2UpstreamConnection) {
        guard !closed else {
            connection.retire()
            return
        }
        connections[connection.slot, default: []].append(connection)
    }

    /// Forgets a connection that closed or is going away.
    func remove(_ connection: HTTP2UpstreamConnection) {
        guard var list = connections[connection.slot] else { return }
        list.removeAll { $0 === connection }
        connections[connection.slot] = list.isEmpty ? nil : list
    }

    /// Closes connections that have carried no stream for their pool idle timeout.
    func closeExpired(now: NIODeadline) {
        for list in connections.values {
            for connection in list where connection.streams == 0 && connection.idleDeadline <= now {
                remove(connection)
                connection.retire()
            }
        }
    }

    /// The endpoint left: its connections take no new stream and close after their last.
    func closeIdle(to address: EndpointAddress) {
        for list in connections.values {
            for connection in list where connection.address == address {
                remove(connection)
                connection.retire()
            }
        }
    }

    func closeAll() {
        closed = true
        let all = connections.values.flatMap { $0 }
        connections = [:]
        for connection in all { connection.retire() }
    }
}
