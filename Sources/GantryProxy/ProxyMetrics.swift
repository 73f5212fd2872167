/// Data-plane counters. Each event loop counts into its own plain integers (no atomics, no
/// shared cache lines on the hot path, as Envoy's per-worker stats); readers add the loops up.
public enum ProxyCounter: Int, CaseIterable, Sendable {
    case downstreamConnections, activeConnections, connectionsRefused, headerTimeouts, requests
    case responses1xx, responses2xx, responses3xx, responses4xx, responses5xx
    case upstreamConnects, upstreamConnectFailures, upstreamReused, retries, outlierEjections
    case http2Connections, http2ProtocolErrors, tlsHandshakeFailures, redirects
    case malformedRequests, noRoute, unauthorized, rateLimited, rateLimitStoreFailures, noEndpoint, upstreamTimeouts, upstreamResets, clientAborts
}

/// One loop's counters.
struct LoopCounters {
    private(set) var values = [Int](repeating: 0, count: ProxyCounter.allCases.count)

    @inline(__always) mutating func add(_ counter: ProxyCounter, _ value: Int = 1) {
        values[counter.rawValue] &+= value
    }

    @inline(__always) mutating func subtract(_ counter: ProxyCounter, _ value: Int = 1) {
        values[counter.rawValue] &-= value
    }

    mutating func recordStatus(_ code: Int) {
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

    mutating func add(_ loop: LoopCounters) {
        for index in values.indices { values[index] += loop.values[index] }
    }
}
