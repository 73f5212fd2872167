import GantryConfig
import GantryCore

/// One event loop's request series, counted into plain numbers as each request ends: requests
/// by route, service and status, latency histograms per stage (the whole request, and the
/// upstream's part of it), and the answers gantry gave itself by reason. Touched only on its
/// loop, so the request path takes no lock and no atomic, as Envoy's per-worker stats; a scrape
/// copies each loop's counts (``series``) and adds them up (``RequestSeries``).
final class RequestMetrics {
    /// One route's counts. A class, so that a request changes them in place; each snapshot
    /// finds its routes' counts once (``LoopGateway``), by the route's and service's names,
    /// so that they outlive a reload.
    final class RouteCounts {
        let route: String
        let service: String
        /// By status code: a route sees a handful of codes, found faster by a look along a
        /// short list than by hashing a key per request.
        private(set) var codes: [(code: Int, count: Int)] = []
        private(set) var total = LatencyHistogram()
        private(set) var upstream = LatencyHistogram()

        init(route: String, service: String) {
            self.route = route
            self.service = service
        }

        func record(status: Int, totalNanoseconds: Int64, upstreamMilliseconds: Double?) {
            if let position = codes.firstIndex(where: { $0.code == status }) {
                codes[position].count += 1
            } else {
                codes.append((status, 1))
            }
            total.record(Double(totalNanoseconds) / 1e9)
            if let upstream = upstreamMilliseconds { self.upstream.record(upstream / 1000) }
        }
    }

    private struct RouteKey: Hashable {
        let route: String
        let service: String
    }

    private var routes: [RouteKey: RouteCounts] = [:]
    private var local: [RequestSeries.LocalKey: Int] = [:]
    private var rateLimits: [RequestSeries.RateLimitKey: Int] = [:]

    /// The counts of requests that went to a route of this name and service.
    func counts(route: String, service: String) -> RouteCounts {
        let key = RouteKey(route: route, service: service)
        if let counts = routes[key] { return counts }
        let counts = RouteCounts(route: route, service: service)
        routes[key] = counts
        return counts
    }

    /// A request gantry answered itself: no route, a policy's refusal, bad input, an edge
    /// limit, no endpoint, an upstream that failed.
    func recordLocal(reason: LocalReason, status: Int) {
        local[RequestSeries.LocalKey(reason: reason.label, code: status), default: 0] += 1
    }

    /// A rate limit's decision on one request.
    func recordRateLimit(policy: String, decision: RateLimitDecision) {
        rateLimits[RequestSeries.RateLimitKey(policy: policy, decision: decision.rawValue), default: 0] += 1
    }

    /// A copy of the counts, for a reader off the loop.
    var series: RequestSeries {
        var series = RequestSeries()
        for counts in routes.values {
            for (code, count) in counts.codes {
                series.requests[RequestSeries.RequestKey(route: counts.route, service: counts.service, code: code), default: 0] += count
            }
            series.latency[RequestSeries.LatencyKey(route: counts.route, stage: "total"), default: LatencyHistogram()].add(counts.total)
            if counts.upstream.count > 0 {
                series.latency[RequestSeries.LatencyKey(route: counts.route, stage: "upstream"), default: LatencyHistogram()].add(counts.upstream)
            }
        }
        series.local = local
        series.rateLimits = rateLimits
        return series
    }
}

/// Request latencies in Prometheus' default buckets, in seconds.
public struct LatencyHistogram: Sendable, Equatable {
    /// Prometheus' default buckets, from 0.5 ms: a proxy's own latency sits well below 5 ms.
    public static let bounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Observations per bucket (not cumulative); the last is above every bound.
    public private(set) var counts = [Int](repeating: 0, count: bounds.count + 1)
    public private(set) var sum = 0.0
    public private(set) var count = 0

    public init() {}

    mutating func record(_ seconds: Double) {
        var bucket = 0
        while bucket < Self.bounds.count, seconds > Self.bounds[bucket] { bucket += 1 }
        counts[bucket] += 1
        sum += seconds
        count += 1
    }

    mutating func add(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        sum += other.sum
        count += other.count
    }
}
