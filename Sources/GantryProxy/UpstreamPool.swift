import GantryCore
import NIOCore

/// Idle keep-alive connections to upstream endpoints, for one event loop. Connections are
/// reused last-in first-out, so the warmest is used and the coldest time out.
final class UpstreamPool {
    private var idle: [EndpointAddress: [UpstreamHandler]] = [:]

    var idleCount: Int { idle.values.reduce(0) { $0 + $1.count } }

    /// A live idle connection to the endpoint, if there is one.
    func take(_ address: EndpointAddress) -> UpstreamHandler? {
        while let connection = idle[address]?.popLast() {
            if connection.isReusable { return connection }
            connection.close()
        }
        return nil
    }

    /// Keeps a connection whose exchange ended cleanly, or closes it when the pool is full.
    func release(_ connection: UpstreamHandler, maxIdle: Int, idleTimeout: TimeAmount, now: NIODeadline) {
        guard connection.isReusable, idle[connection.address, default: []].count < maxIdle else {
            connection.close()
            return
        }
        connection.idleDeadline = now + idleTimeout
        idle[connection.address, default: []].append(connection)
    }

    /// Forgets a connection that closed while idle.
    func remove(_ connection: UpstreamHandler) {
        guard var list = idle[connection.address], let index = list.firstIndex(where: { $0 === connection }) else { return }
        list.remove(at: index)
        idle[connection.address] = list.isEmpty ? nil : list
    }

    func closeExpired(now: NIODeadline) {
        for (address, list) in idle {
            let expired = list.filter { $0.idleDeadline <= now }
            guard !expired.isEmpty else { continue }
            let kept = list.filter { $0.idleDeadline > now }
            idle[address] = kept.isEmpty ? nil : kept
            for connection in expired { connection.close() }
        }
    }

    func closeIdle(to address: EndpointAddress) {
        for connection in idle.removeValue(forKey: address) ?? [] { connection.close() }
    }

    func closeAll() {
        let all = idle.values.flatMap { $0 }
        idle.removeAll()
        for connection in all { connection.close() }
    }
}
