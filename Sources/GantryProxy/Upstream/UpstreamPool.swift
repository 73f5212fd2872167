import GantryCore
import NIOCore

/// Idle keep-alive connections to upstream endpoints, for one event loop. Connections are
/// reused last-in first-out, so the warmest is used and the coldest time out.
final class UpstreamPool {
    /// One endpoint's idle connections. A class, so that taking or returning a connection is a
    /// change to this array in place. A connection that has been in a list keeps it
    /// (``UpstreamHandler/idleList``), so that returning it to the pool needs no lookup; a list
    /// the pool drops is emptied, since it and its connections refer to each other.
    final class IdleList {
        let address: EndpointAddress
        var connections: [UpstreamHandler] = []
        /// False once the pool has dropped the list, so that no connection is kept in it.
        var isInPool = true

        init(address: EndpointAddress) {
            self.address = address
        }
    }

    /// By ``EndpointState/slot``: found by index on every request, where a dictionary keyed by
    /// address hashed the address each time.
    private var lists: [IdleList?] = []
    /// Set by ``closeAll()``: the pool is out of use (its TLS options went with a reload, or the
    /// loop stopped), and a connection returned to it closes.
    private var closed = false

    /// A live idle connection to the endpoint, if there is one.
    func take(_ endpoint: EndpointState) -> UpstreamHandler? {
        guard endpoint.slot < lists.count, let list = lists[endpoint.slot] else { return nil }
        while let connection = list.connections.popLast() {
            if connection.isReusable { return connection }
            connection.close()
        }
        return nil
    }

    /// Keeps a connection whose exchange ended cleanly, or closes it when the pool is full (by
    /// its service's settings, ``UpstreamHandler/maxIdle``).
    func release(_ connection: UpstreamHandler, now: NIODeadline) {
        guard connection.isReusable, !closed else {
            connection.close()
            return
        }
        let list: IdleList
        if let known = connection.idleList, known.isInPool {
            list = known
        } else if connection.slot < lists.count, let existing = lists[connection.slot] {
            list = existing
        } else {
            list = IdleList(address: connection.address)
            if connection.slot >= lists.count { lists.append(contentsOf: repeatElement(nil, count: connection.slot + 1 - lists.count)) }
            lists[connection.slot] = list
        }
        if connection.idleList !== list { connection.idleList = list }
        guard list.connections.count < connection.maxIdle else {
            connection.close()
            return
        }
        connection.idleDeadline = now + connection.poolIdleTimeout
        list.connections.append(connection)
    }

    /// Forgets a connection that closed while idle.
    func remove(_ connection: UpstreamHandler) {
        guard let list = connection.idleList, list.isInPool, let index = list.connections.firstIndex(where: { $0 === connection }) else { return }
        list.connections.remove(at: index)
    }

    func closeExpired(now: NIODeadline) {
        for slot in lists.indices {
            guard let list = lists[slot] else { continue }
            let expired = list.connections.filter { $0.idleDeadline <= now }
            guard !expired.isEmpty else { continue }
            list.connections.removeAll { $0.idleDeadline <= now }
            if list.connections.isEmpty { drop(slot) }
            for connection in expired { connection.close() }
        }
    }

    func closeIdle(to address: EndpointAddress) {
        for slot in lists.indices where lists[slot]?.address == address {
            let connections = lists[slot]!.connections
            drop(slot)
            for connection in connections { connection.close() }
        }
    }

    func closeAll() {
        closed = true
        for slot in lists.indices {
            let connections = lists[slot]?.connections ?? []
            drop(slot)
            for connection in connections { connection.close() }
        }
    }

    /// The list leaves the pool emptied: it and its connections refer to each other.
    private func drop(_ slot: Int) {
        guard let list = lists[slot] else { return }
        list.isInPool = false
        list.connections = []
        lists[slot] = nil
    }
}
