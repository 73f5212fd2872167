import GantryConfig
import GantryPods
import GantryProxy
import Prometheus

/// `GET /metrics` on the admin port, in Prometheus' text format: the data plane's own series
/// (requests by route, service and status; latency per stage), recorded as requests end, plus the
/// state of things read at scrape time (edge and proxy counters, in-flight requests, ready
/// endpoints, pods, replicas) into a registry made for this scrape.
public struct MetricsPage: Sendable {
    let snapshot: RuntimeSnapshot
    let plane: DataPlane
    let supervisor: PodSupervisor

    public init(snapshot: RuntimeSnapshot, plane: DataPlane, supervisor: PodSupervisor) {
        self.snapshot = snapshot
        self.plane = plane
        self.supervisor = supervisor
    }

    public func render() async -> [UInt8] {
        var bytes = plane.prometheus.emitToBuffer()
        let now = PrometheusCollectorRegistry()
        let counters = await plane.counters()
        for counter in ProxyCounter.allCases {
            let name = Self.snakeCase("\(counter)")
            if counter == .activeConnections {
                now.makeGauge(name: "gantry_active_connections", help: "Open client connections").set(Int64(counters[counter]))
            } else {
                now.makeCounter(name: "gantry_proxy_\(name)_total", help: Self.help[counter] ?? name.replacingOccurrences(of: "_", with: " "))
                    .increment(by: Int64(counters[counter]))
            }
        }
        let pods = await supervisor.podStatuses()
        for service in snapshot.services {
            let labels = [("service", service.name)]
            let endpoints = plane.endpoints(forService: service.name)?.endpoints ?? []
            now.makeGauge(name: "gantry_service_ready_endpoints", labels: labels, help: "Endpoints taking traffic").set(Int64(endpoints.count))
            now.makeGauge(name: "gantry_service_in_flight_requests", labels: labels, help: "Requests waiting on the service's endpoints")
                .set(Int64(endpoints.reduce(0) { $0 + $1.inFlight }))
            guard service.pods != nil else { continue }
            let mine = pods.filter { $0.service == service.name }
            now.makeGauge(name: "gantry_replicas", labels: labels, help: "Pods running").set(Int64(mine.count))
            now.makeGauge(name: "gantry_replicas_desired", labels: labels, help: "Pods wanted (by hand or by the autoscaler)")
                .set(Int64(await supervisor.serviceStatus(service.name).replicas ?? 0))
            for pod in mine {
                let podLabels = [("service", service.name), ("pod", pod.name)]
                now.makeCounter(name: "gantry_pod_restarts_total", labels: podLabels, help: "Restarts of the pod's process")
                    .increment(by: Int64(pod.restarts))
                now.makeGauge(name: "gantry_pod_ready", labels: podLabels, help: "1 when the pod passes its readiness probe").set(Int64(pod.ready ? 1 : 0))
                if let memory = pod.memoryBytes {
                    now.makeGauge(name: "gantry_pod_memory_bytes", labels: podLabels, help: "Resident memory of the pod's process group")
                        .set(Int64(memory))
                }
            }
        }
        now.emit(into: &bytes)
        return bytes
    }

    static let help: [ProxyCounter: String] = [
        .connectionsRefused: "Connections closed at accept by the connection limits",
        .headerTimeouts: "Requests whose head did not arrive in time (408)",
        .malformedRequests: "Requests refused as malformed (400, 413, 414, 431)",
        .tlsHandshakeFailures: "TLS handshakes that failed or timed out",
        .http2ProtocolErrors: "HTTP/2 connections closed for protocol errors and floods",
        .rateLimited: "Requests refused by a rate limit (429)",
        .unauthorized: "Requests refused by authentication (401)",
    ]

    /// `connectionsRefused` → `connections_refused`.
    static func snakeCase(_ name: String) -> String {
        var result = ""
        for character in name {
            if character.isUppercase || (character.isNumber && !(result.last?.isNumber ?? true)) {
                result.append("_")
            }
            result.append(contentsOf: character.lowercased())
        }
        return result
    }
}
