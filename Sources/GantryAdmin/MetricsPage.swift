import GantryConfig
import GantryPods
import GantryProxy
import Prometheus

/// `GET /metrics` on the admin port, in Prometheus' text format: the data plane's request series
/// (requests by route, service and status; latency per stage; local answers), counted on each
/// event loop and added up here, plus the state of things read at scrape time (edge and proxy
/// counters, in-flight requests, ready endpoints, pods, replicas) into a registry made for this
/// scrape.
public struct MetricsPage: Sendable {
    let snapshot: RuntimeSnapshot
    let plane: DataPlane
    let supervisor: PodSupervisor
    let config: ConfigStatus?

    public init(snapshot: RuntimeSnapshot, plane: DataPlane, supervisor: PodSupervisor, config: ConfigStatus? = nil) {
        self.snapshot = snapshot
        self.plane = plane
        self.supervisor = supervisor
        self.config = config
    }

    public func render() async -> [UInt8] {
        var bytes = Array(await plane.requestSeries().prometheusText.utf8)
        let now = PrometheusCollectorRegistry()
        let counters = await plane.counters()
        for counter in ProxyCounter.allCases {
            let name = Self.snakeCase("\(counter)")
            if counter == .activeConnections {
                now.makeGauge(descriptor: Self.metric("gantry_active_connections", help: "Open client connections")).set(Int64(counters[counter]))
            } else if counter == .openTunnels {
                now.makeGauge(descriptor: Self.metric("gantry_open_tunnels", help: "Upgraded connections (WebSockets) open now"))
                    .set(Int64(counters[counter]))
            } else {
                now.makeCounter(descriptor: Self.metric("gantry_proxy_\(name)_total", help: Self.help[counter] ?? name.replacingOccurrences(of: "_", with: " ")))
                    .increment(by: Int64(counters[counter]))
            }
        }
        now.makeCounter(
            descriptor: Self.metric("gantry_access_log_dropped_lines_total", help: "Access-log lines that could not be written (a full disk)")
        ).increment(by: Int64(plane.accessLogDroppedLines))
        if let config {
            now.makeGauge(descriptor: Self.metric("gantry_config_generation", help: "The running configuration's generation (1 at start)"))
                .set(Int64(config.generation))
            for result in ["applied", "unchanged", "rejected"] {
                now.makeCounter(
                    descriptor: Self.metric("gantry_config_reloads_total", help: "Configurations applied, found unchanged or rejected since start"),
                    labels: [("result", result)]
                ).increment(by: Int64(config.reloads[result] ?? 0))
            }
        }
        let pods = await supervisor.podStatuses()
        for service in snapshot.services {
            let labels = [("service", service.name)]
            let endpoints = plane.endpoints(forService: service.name)?.endpoints ?? []
            now.makeGauge(descriptor: Self.metric("gantry_service_ready_endpoints", help: "Endpoints taking traffic"), labels: labels).set(Int64(endpoints.count))
            now.makeGauge(descriptor: Self.metric("gantry_service_in_flight_requests", help: "Requests waiting on the service's endpoints"), labels: labels)
                .set(Int64(endpoints.reduce(0) { $0 + $1.inFlight }))
            guard service.pods != nil else { continue }
            let mine = pods.filter { $0.service == service.name }
            now.makeGauge(descriptor: Self.metric("gantry_replicas", help: "Pods running"), labels: labels).set(Int64(mine.count))
            now.makeGauge(descriptor: Self.metric("gantry_replicas_desired", help: "Pods wanted (by hand or by the autoscaler)"), labels: labels)
                .set(Int64(await supervisor.serviceStatus(service.name).replicas ?? 0))
            for pod in mine {
                let podLabels = [("service", service.name), ("pod", pod.name)]
                now.makeCounter(descriptor: Self.metric("gantry_pod_restarts_total", help: "Restarts of the pod's process"), labels: podLabels)
                    .increment(by: Int64(pod.restarts))
                now.makeGauge(descriptor: Self.metric("gantry_pod_ready", help: "1 when the pod passes its readiness probe"), labels: podLabels).set(Int64(pod.ready ? 1 : 0))
                if let memory = pod.memoryBytes {
                    now.makeGauge(descriptor: Self.metric("gantry_pod_memory_bytes", help: "Resident memory of the pod's process group"), labels: podLabels)
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
        .malformedRequests: "Requests that broke HTTP's rules or the edge's limits (400, 413, 414, 431, 501); every answer gantry gives itself is in gantry_local_responses_total by reason",
        .tlsHandshakeFailures: "TLS handshakes that failed or timed out",
        .http2ProtocolErrors: "HTTP/2 connections closed for protocol errors and floods",
        .http2StreamErrors: "HTTP/2 streams reset for errors of their own (a malformed request), their connection going on",
        .rateLimited: "Requests refused by a rate limit (429)",
        .mirroredRequests: "Requests copied to a route's mirror service (their answers are dropped)",
        .unauthorized: "Requests refused by authentication (401)",
        .tunnels: "Connections that switched protocols (WebSockets) through gantry",
        .tunnelBytesFromClients: "Bytes clients sent through switched connections",
        .tunnelBytesFromUpstreams: "Bytes upstreams sent through switched connections",
    ]

    /// A series named in full (its unit already in the name, e.g. `_total`, `_bytes`).
    static func metric(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

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
