import GantryCore
import NIOCore

/// Idle keep-alive connections to upstream endpoints, for one event loop. Connections are
/// reused last-in first-out, so the warmest is used and the coldest time out.
final class UpstreamPool {
    /// One endpoint's idle connections. A class, so that taking or returning a connection is a
    /// dictionary lookup and a change to this array in place: changing an array stored in the
    /// dictionary goes through the dictionary's `modify` accessors, whose coroutine frames cost
    /// three allocations per request. A connection that has been in a list keeps it
    /// (``UpstreamHandler/idleList``), so that returning it to the pool needs no lookup; a list
    /// the pool drops is emptied, since it and its connections refer to each other.
    final class IdleList {
        var connections: [UpstreamHandler] = []
        /// False once the pool has dropped the list, so that no connection is kept in it.
        var isInPool = true
    }

    private var idle: [EndpointAddress: IdleList] = [:]

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.connections.count } }

    /// A live idle connection to the endpoint, if there is one.
    func take(_ address: EndpointAddress) -> UpstreamHandler? {
        guard let list = idle[address] else { return nil }
        while let connection = list.connections.popLast() {
            if connection.isReusable { return connection }
            connection.close()
        }
        return nil
    }

    /// Keeps a connection whose exchange ended cleanly, or closes it when the pool is full.
    func release(_ connection: UpstreamHandler, maxIdle: Int, idleTimeout: TimeAmount, now: NIODeadline) {
        guard connection.isReusable else {
            connection.close()
            return
        }
        // The connection remembers its endpoint's list: one hash of the address per request
        // (in `take`) rather than two.
        let list: IdleList
        if let known = connection.idleList, known.isInPool {
            list = known
        } else if let existing = idle[connection.address] {
            list = existing
        } else {
            list = IdleList()
            idle[connection.address] = list
        }
        connection.idleList = list
        guard list.connections.count < maxIdle else {
            connection.close()
            return
        }
        connection.idleDeadline = now + idleTimeout
        list.connections.append(connection)
    }

    /// Forgets a connection that closed while idle.
    func remove(_ connection: UpstreamHandler) {
        guard let list = idle[connection.address], let index = list.connections.firstIndex(where: { $0 === connection }) else { return }
        list.connections.remove(at: index)
    }

    func closeExpired(now: NIODeadline) {
        for (address, list) in idle {
            let expired = list.connections.filter { $0.idleDeadline <= now }
            guard !expired.isEmpty else { continue }
            list.connections.removeAll { $0.idleDeadline <= now }
            if list.connections.isEmpty {
                list.isInPool = false
                idle[address] = nil
            }
            for connection in expired { connection.close() }
        }
    }

    func closeIdle(to address: EndpointAddress) {
        guard let list = idle.removeValue(forKey: address) else { return }
        list.isInPool = false
        let connections = list.connections
        list.connections = []  // a list and its connections refer to each other
        for connection in connections { connection.close() }
    }

    func closeAll() {
        let all = idle.values.flatMap(\.connections)
        for list in idle.values {
            list.isInPool = false
            list.connections = []
        }
        idle.removeAll()
        for connection in all { connection.close() }
    }
}
