/// Passive health for local-origin failures, as Envoy's outlier detection with
/// `consecutive_local_origin_failure`: after `consecutiveConnectFailures` failed connects or
/// response timeouts in a row (an answer ends the run) an endpoint is ejected for `baseEjectionTime` × the number of times it was ejected
/// (at most `maxEjectionTime`); balancers skip it meanwhile unless every endpoint is ejected
/// (Envoy's panic mode: better to try than to fail). An endpoint that comes back through the
/// control plane (a restarted pod passing readiness) starts afresh.
public struct OutlierDetection: Sendable, Hashable {
    public var consecutiveConnectFailures: Int
    public var baseEjectionTime: Duration
    public var maxEjectionTime: Duration

    /// Envoy's defaults: 5 failures, 30 s, 300 s.
    public init(consecutiveConnectFailures: Int = 5, baseEjectionTime: Duration = .seconds(30), maxEjectionTime: Duration = .seconds(300)) {
        self.consecutiveConnectFailures = consecutiveConnectFailures
        self.baseEjectionTime = baseEjectionTime
        self.maxEjectionTime = maxEjectionTime
    }

    /// How long the `ejections`-th ejection lasts, in nanoseconds.
    public func ejectionNanoseconds(ejections: Int) -> UInt64 {
        let duration = min(baseEjectionTime * max(1, ejections), maxEjectionTime)
        return UInt64(max(0, duration.nanoseconds))
    }
}
