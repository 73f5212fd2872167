/// Data-plane counters. Each event loop counts into its own plain integers (no atomics, no
/// shared cache lines on the hot path, as Envoy's per-worker stats); readers add the loops up.
public enum ProxyCounter: Int, CaseIterable, Sendable {
    case downstreamConnections, activeConnections, connectionsRefused, headerTimeouts, requests
    case responses1xx, responses2xx, responses3xx, responses4xx, responses5xx
    case upstreamConnects, upstreamConnectFailures, upstreamReused, retries, outlierEjections
    case http2Connections, http2ProtocolErrors, http2StreamErrors, tlsHandshakeFailures, redirects, mirroredRequests
    case malformedRequests, noRoute, unauthorized, rateLimited, rateLimitStoreFailures, noEndpoint, upstreamTimeouts, upstreamResets, clientAborts
    /// Connections switched to another protocol (WebSockets): open now, ever opened, and the
    /// bytes they carried each way.
    case openTunnels, tunnels, tunnelBytesFromClients, tunnelBytesFromUpstreams
}

/// One loop's counters, touched only on its loop. A class over storage allocated once: as an
/// array in a `var` of the loop, each count was an exclusivity check on the loop's property and
/// a uniqueness check on the array, several times a request.
final class LoopCounters {
    private let storage = UnsafeMutablePointer<Int>.allocate(capacity: ProxyCounter.allCases.count)

    init() { storage.initialize(repeating: 0, count: ProxyCounter.allCases.count) }

    deinit { storage.deallocate() }

    /// A copy of the counts, for readers off the loop.
    var values: [Int] { Array(UnsafeBufferPointer(start: storage, count: ProxyCounter.allCases.count)) }

    @inline(__always) func add(_ counter: ProxyCounter, _ value: Int = 1) {
        storage[counter.rawValue] &+= value
    }

    @inline(__always) func subtract(_ counter: ProxyCounter, _ value: Int = 1) {
        storage[counter.rawValue] &-= value
    }

    func recordStatus(_ code: Int) {
        switch code {
        case ..<200: add(.responses1xx)
        case ..<300: add(.responses2xx)
        case ..<400: add(.responses3xx)
        case ..<500: add(.responses4xx)
        default: add(.responses5xx)
        }
    }
}

/// The counters of all loops, added up.
public struct ProxyCounters: Sendable {
    public private(set) var values = [Int](repeating: 0, count: ProxyCounter.allCases.count)

    public subscript(_ counter: ProxyCounter) -> Int { values[counter.rawValue] }

    mutating func add(_ loop: [Int]) {
        for index in values.indices { values[index] += loop[index] }
    }
}
