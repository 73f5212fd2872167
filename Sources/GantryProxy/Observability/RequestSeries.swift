/// The request series of the whole data plane, added up over its event loops when scraped
/// (``DataPlane/requestSeries()``), and written in Prometheus' text format (version 0.0.4).
public struct RequestSeries: Sendable, Equatable {
    public struct RequestKey: Hashable, Sendable {
        public let route: String
        public let service: String
        public let code: Int
    }

    public struct LatencyKey: Hashable, Sendable {
        public let route: String
        /// `total` or `upstream`.
        public let stage: String
    }

    public struct LocalKey: Hashable, Sendable {
        public let reason: String
        public let code: Int
    }

    public struct RateLimitKey: Hashable, Sendable {
        public let policy: String
        /// `allowed`, `limited` or `error`.
        public let decision: String
    }

    /// `gantry_requests_total`.
    public var requests: [RequestKey: Int] = [:]
    /// `gantry_request_duration_seconds`.
    public var latency: [LatencyKey: LatencyHistogram] = [:]
    /// `gantry_local_responses_total`.
    public var local: [LocalKey: Int] = [:]
    /// `gantry_rate_limit_decisions_total`.
    public var rateLimits: [RateLimitKey: Int] = [:]

    public init() {}

    public mutating func add(_ other: RequestSeries) {
        requests.merge(other.requests, uniquingKeysWith: +)
        for (key, histogram) in other.latency { latency[key, default: LatencyHistogram()].add(histogram) }
        local.merge(other.local, uniquingKeysWith: +)
        rateLimits.merge(other.rateLimits, uniquingKeysWith: +)
    }

    /// The series as Prometheus text, each family once with its `HELP` and `TYPE`, series in a
    /// stable order.
    public var prometheusText: String {
        var text = ""
        if !requests.isEmpty {
            text += "# HELP gantry_requests_total Requests that went to a route, by route, service and status code\n"
            text += "# TYPE gantry_requests_total counter\n"
            for (key, count) in requests.sorted(by: { ($0.key.route, $0.key.service, $0.key.code) < ($1.key.route, $1.key.service, $1.key.code) }) {
                text += "gantry_requests_total{route=\(Self.quoted(key.route)),service=\(Self.quoted(key.service)),code=\"\(key.code)\"} \(count)\n"
            }
        }
        if !latency.isEmpty {
            text += "# HELP gantry_request_duration_seconds Time inside gantry per request: the whole request (total) and the upstream's part\n"
            text += "# TYPE gantry_request_duration_seconds histogram\n"
            for (key, histogram) in latency.sorted(by: { ($0.key.route, $0.key.stage) < ($1.key.route, $1.key.stage) }) {
                let labels = "route=\(Self.quoted(key.route)),stage=\(Self.quoted(key.stage))"
                var cumulative = 0
                for (index, count) in histogram.counts.enumerated() {
                    cumulative += count
                    let bound = index < LatencyHistogram.bounds.count ? "\(LatencyHistogram.bounds[index])" : "+Inf"
                    text += "gantry_request_duration_seconds_bucket{\(labels),le=\"\(bound)\"} \(cumulative)\n"
                }
                text += "gantry_request_duration_seconds_sum{\(labels)} \(histogram.sum)\n"
                text += "gantry_request_duration_seconds_count{\(labels)} \(histogram.count)\n"
            }
        }
        if !local.isEmpty {
            text += "# HELP gantry_local_responses_total Requests gantry answered itself, by reason and status code\n"
            text += "# TYPE gantry_local_responses_total counter\n"
            for (key, count) in local.sorted(by: { ($0.key.reason, $0.key.code) < ($1.key.reason, $1.key.code) }) {
                text += "gantry_local_responses_total{reason=\(Self.quoted(key.reason)),code=\"\(key.code)\"} \(count)\n"
            }
        }
        if !rateLimits.isEmpty {
            text += "# HELP gantry_rate_limit_decisions_total What each rate limit decided: allowed, limited (refused, or let through in shadow mode), error (its store failed)\n"
            text += "# TYPE gantry_rate_limit_decisions_total counter\n"
            for (key, count) in rateLimits.sorted(by: { ($0.key.policy, $0.key.decision) < ($1.key.policy, $1.key.decision) }) {
                text += "gantry_rate_limit_decisions_total{policy=\(Self.quoted(key.policy)),decision=\(Self.quoted(key.decision))} \(count)\n"
            }
        }
        return text
    }

    /// A label value in quotes, with `\`, `"` and line feeds escaped as the format asks.
    static func quoted(_ value: String) -> String {
        var escaped = "\""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped + "\""
    }
}
