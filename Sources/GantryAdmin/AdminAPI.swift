import Foundation
import GantryConfig
import GantryCore
import GantryPods

/// The admin API's answers, independent of the HTTP server that carries them:
///
///     GET  /                               the dashboard (HTML)
///     GET  /metrics                        Prometheus text format
///     GET  /api/listeners                  [ListenerStatus]
///     GET  /api/history                    [ReplicaHistory.Sample]
///     GET  /api/pods                       [PodStatus]
///     GET  /api/services                   [ServiceStatus]
///     GET  /api/routes                     [RouteStatus]
///     GET  /api/events                     [PodEvent]
///     POST /api/services/NAME/scale        {"replicas": N}
///     POST /api/services/NAME/restart      rollout restart
///     GET  /api/config                     ConfigStatus
///     POST /api/config                     ApplyRequest → ApplyOutcome (422 when the file has problems)
///
/// With `admin.token` set, every call that changes something must send `Authorization: Bearer
/// TOKEN`; reads stay open (the dashboard, `/metrics`), as they show no secret.
public struct AdminAPI: Sendable {
    public struct Response: Sendable {
        public let status: Int
        public let body: Data
        public var contentType = "application/json"
        /// A 401 that asks for the token (`WWW-Authenticate: Bearer`).
        public var challenge = false
    }

    let config: any ConfigController
    let supervisor: PodSupervisor
    let endpoints: @Sendable (String) -> [String]
    let targets: @Sendable (String) -> [TargetStatus]
    let metrics: (@Sendable () async -> [UInt8])?
    let history: ReplicaHistory?
    /// The token's digest, compared with the presented one's: equal lengths, whatever is sent.
    let tokenDigest: String?

    /// The configuration requests arrive under now.
    var snapshot: RuntimeSnapshot { config.snapshot }

    public init(
        config: any ConfigController, supervisor: PodSupervisor, endpoints: @escaping @Sendable (String) -> [String],
        targets: @escaping @Sendable (String) -> [TargetStatus] = { _ in [] },
        metrics: (@Sendable () async -> [UInt8])? = nil, history: ReplicaHistory? = nil, token: String? = nil
    ) {
        self.tokenDigest = token.map { ContentDigest.sha256($0) }
        self.metrics = metrics
        self.history = history
        self.config = config
        self.supervisor = supervisor
        self.endpoints = endpoints
        self.targets = targets
    }

    public func handle(method: String, path: String, body: Data, authorization: String? = nil) async -> Response {
        if let tokenDigest, method != "GET", method != "HEAD" {
            // The scheme is case-insensitive (RFC 9110 §11.1).
            let presented = authorization.flatMap { $0.lowercased().hasPrefix("bearer ") ? String($0.dropFirst(7)) : nil }
            guard let presented, ContentDigest.sha256(presented) == tokenDigest else {
                var refused = problem(401, "this admin API changes nothing without its token: send Authorization: Bearer … (gantry commands: $GANTRY_ADMIN_TOKEN or --admin-token-file)")
                refused.challenge = true
                return refused
            }
        }
        let parts = path.split(separator: "?", maxSplits: 1)[0].split(separator: "/").map(String.init)
        if parts.isEmpty || parts == ["dashboard"] {
            guard method == "GET" else { return problem(405, "\(method) is not allowed here") }
            return Response(status: 200, body: Data(DashboardPage.html.utf8), contentType: "text/html; charset=utf-8")
        }
        if parts == ["metrics"], let metrics {
            guard method == "GET" else { return problem(405, "\(method) is not allowed here") }
            return Response(status: 200, body: Data(await metrics()), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        guard parts.first == "api", parts.count >= 2 else { return problem(404, "no such admin resource: \(path)") }
        if parts == ["api", "config"] {
            switch method {
            case "GET": return json(await config.status())
            case "POST":
                guard let request = try? JSONDecoder().decode(ApplyRequest.self, from: body) else {
                    return problem(400, "send {\"path\": …, \"text\": …, \"dryRun\": false}")
                }
                let outcome = await config.apply(request)
                var response = json(outcome)
                if outcome.result == .rejected { response = Response(status: 422, body: response.body) }
                return response
            default: return problem(405, "\(method) is not allowed here")
            }
        }
        if parts.count == 2, ["pods", "services", "routes", "events", "listeners", "history"].contains(parts[1]) {
            guard method == "GET" else { return problem(405, "\(method) is not allowed here") }
            switch parts[1] {
            case "pods": return json(await supervisor.podStatuses())
            case "services": return json(await services())
            case "routes": return json(routes())
            case "listeners": return json(listeners())
            case "history": return json(history?.all ?? [])
            default: return json(supervisor.events.all)
            }
        }
        guard parts.count == 4, parts[1] == "services", ["scale", "restart"].contains(parts[3]) else {
            return problem(404, "no such admin resource: \(path)")
        }
        guard method == "POST" else { return problem(405, "\(method) is not allowed here") }
        let name = parts[2]
        do {
            if parts[3] == "restart" {
                try await supervisor.rolloutRestart(name)
                return json(["service": name, "rollout": "restarting"])
            }
            struct Scale: Decodable { let replicas: Int }
            guard let request = try? JSONDecoder().decode(Scale.self, from: body) else {
                return problem(400, "send {\"replicas\": N}")
            }
            try await supervisor.scale(name, replicas: request.replicas)
            return json(["service": name, "replicas": "\(request.replicas)"])
        } catch {
            return problem(error as? SupervisorError == .unknownService(name) ? 404 : 400, "\(error)")
        }
    }

    private func services() async -> [ServiceStatus] {
        var result: [ServiceStatus] = []
        for service in snapshot.services {
            let status = await supervisor.serviceStatus(service.name)
            result.append(
                ServiceStatus(
                    name: service.name, clusterIP: status.clusterIP, desiredReplicas: status.replicas,
                    endpoints: endpoints(service.name), targets: service.healthCheck == nil ? nil : targets(service.name)))
        }
        return result
    }

    private func routes() -> [RouteStatus] {
        snapshot.routes.rules.map { rule in
            RouteStatus(
                name: rule.name, host: rule.host.description, path: rule.path.path, pathType: rule.path.type.rawValue,
                methods: rule.methods, service: snapshot.services[rule.service].name,
                policies: snapshot.routeSettings[rule.index].policies.map { snapshot.policies[$0].kind })
        }
    }

    private func listeners() -> [ListenerStatus] {
        snapshot.listeners.map { listener in
            ListenerStatus(
                name: listener.name, address: listener.address, port: listener.port, scheme: listener.scheme, http2: listener.http2,
                tls: listener.tls != nil, redirectTo: listener.redirectToPort.flatMap { port in snapshot.listeners.first { $0.port == port }?.name })
        }
    }

    private func json(_ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return Response(status: 200, body: (try? encoder.encode(value)) ?? Data("null".utf8))
    }

    private func problem(_ status: Int, _ message: String) -> Response {
        Response(status: status, body: (try? JSONEncoder().encode(["error": message])) ?? Data())
    }
}

/// One ingress rule as the admin API shows it.
public struct RouteStatus: Sendable, Codable, Hashable {
    public let name: String
    public let host: String
    public let path: String
    public let pathType: String
    public let methods: [String]
    public let service: String
    /// The kinds of the route's gateway policies, in the order they run.
    public let policies: [String]
}

/// One load-balancer listener as the admin API shows it.
public struct ListenerStatus: Sendable, Codable, Hashable {
    public let name: String
    public let address: String
    public let port: Int
    public let scheme: String
    public let http2: Bool
    public let tls: Bool
    public let redirectTo: String?
}

