import GantryCore
import NIOCore
import Prometheus

/// The data plane's Prometheus series, recorded with swift-prometheus as each request ends:
/// requests by route, service and status, and latency histograms per stage (the whole request,
/// and the upstream's part of it). One instance per event loop caches its series handles, since
/// the registry's lookup takes a lock and the handles themselves are atomics.
final class RequestMetrics {
    private let registry: PrometheusCollectorRegistry

    /// One route's series. In seconds, as `Double`s: a `DurationHistogram` compares
    /// `Duration`s, 128-bit arithmetic on every bucket of every request.
    private final class RouteSeries {
        /// By status code: a route sees a handful of codes, found faster by a look along a
        /// short list than by hashing a key per request.
        var requests: [(code: Int, counter: Counter)] = []
        let total: ValueHistogram
        let upstream: ValueHistogram

        init(total: ValueHistogram, upstream: ValueHistogram) {
            self.total = total
            self.upstream = upstream
        }
    }

    /// By route index. A class per route, so that a request's lookup is one array read.
    private var routes: [RouteSeries?] = []
    private var rejections: [String: Counter] = [:]

    /// Prometheus' default buckets, from 0.5 ms: a proxy's own latency sits well below 5 ms.
    static let buckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    /// A request that went to a route (answered by the upstream or by gantry on its behalf).
    /// `service` names the series with the route the first time a status is seen.
    func record(route: RouteRule, service: @autoclosure () -> String, status: Int, totalNanoseconds: Int64, upstreamMilliseconds: Double?) {
        let series = route.index < routes.count ? routes[route.index] : nil
        let found = series ?? makeSeries(routeIndex: route.index, route: route.name)
        if let known = found.requests.first(where: { $0.code == status }) {
            known.counter.increment()
        } else {
            let made = registry.makeCounter(
                name: "gantry_requests_total", labels: [("route", route.name), ("service", service()), ("code", String(status))])
            found.requests.append((status, made))
            made.increment()
        }
        found.total.record(Double(totalNanoseconds) / 1e9)
        if let upstream = upstreamMilliseconds { found.upstream.record(upstream / 1000) }
    }

    private func makeSeries(routeIndex: Int, route: String) -> RouteSeries {
        if routeIndex >= routes.count { routes.append(contentsOf: repeatElement(nil, count: routeIndex + 1 - routes.count)) }
        let made = RouteSeries(
            total: registry.makeValueHistogram(
                name: "gantry_request_duration_seconds", labels: [("route", route), ("stage", "total")], buckets: Self.buckets),
            upstream: registry.makeValueHistogram(
                name: "gantry_request_duration_seconds", labels: [("route", route), ("stage", "upstream")], buckets: Self.buckets))
        routes[routeIndex] = made
        return made
    }

    /// A request gantry answered itself before any upstream: no route, a policy's refusal, bad
    /// input, an edge limit. `reason` is the access log's `detail`.
    func recordLocal(reason: String, status: Int) {
        let counter =
            rejections[reason]
            ?? {
                let made = registry.makeCounter(
                    name: "gantry_local_responses_total", labels: [("reason", reason), ("code", String(status))])
                rejections[reason] = made
                return made
            }()
        counter.increment()
    }
}
