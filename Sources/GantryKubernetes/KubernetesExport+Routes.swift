import GantryConfig
import GantryCore

/// The file's routes for another controller (`--routes gateway-api|ingress`): Gateway API
/// HTTPRoutes, or one Ingress. What those objects cannot say (gantry's policies, most of all)
/// is listed as a warning and left out.
extension KubernetesExport {
    private var routeSpecs: [(spec: RouteSpec, name: String)] {
        let names = snapshot.routeNames
        return (spec.gateway?.routes ?? []).enumerated().map { index, route in (route, names.indices.contains(index) ? names[index] : "route-\(index)") }
    }

    private func port(of serviceName: String) -> Int {
        snapshot.service(named: serviceName).map(Self.servicePort) ?? 80
    }

    mutating func httpRoutes() -> [ManifestDocument] {
        var documents: [ManifestDocument] = []
        for (index, (route, name)) in routeSpecs.enumerated() {
            let path = "gateway.routes[\(index)]"
            var match = ManifestMap()
            match["path"] = ["type": route.pathType == .exact ? "Exact" : "PathPrefix", "value": .string(route.path ?? "/")]
            var headers: [Manifest] = []
            for (position, header) in (route.headers ?? []).enumerated() {
                let name = Manifest.string(header.name ?? "")
                if let value = header.value {
                    headers.append(["type": "Exact", "name": name, "value": .string(value)])
                } else if let regex = header.regex {
                    headers.append(["type": "RegularExpression", "name": name, "value": .string(regex)])
                } else if header.present == true {
                    headers.append(["type": "RegularExpression", "name": name, "value": ".*"])
                } else {
                    warn("\(path).headers[\(position)]", "HTTPRoute cannot match a header's absence; the condition is left out")
                }
            }
            if !headers.isEmpty { match["headers"] = .list(headers) }
            let query: [Manifest] = (route.queryParams ?? []).map { parameter in
                parameter.regex.map { ["type": "RegularExpression", "name": .string(parameter.name ?? ""), "value": .string($0)] }
                    ?? ["type": "Exact", "name": .string(parameter.name ?? ""), "value": .string(parameter.value ?? "")]
            }
            if !query.isEmpty { match["queryParams"] = .list(query) }
            // One match per method: a match names at most one.
            let matches: [Manifest] = (route.methods ?? []).isEmpty
                ? [.map(match)]
                : (route.methods ?? []).map { method in
                    var copy = match
                    copy["method"] = .string(method.uppercased())
                    return .map(copy)
                }

            var rule = ManifestMap()
            rule["matches"] = .list(matches)
            let backends: [(service: String?, weight: Int?)] =
                route.backends?.map { ($0.service, $0.weight) } ?? route.service.map { [($0, nil)] } ?? []
            rule["backendRefs"] = .list(
                backends.map { backend in
                    var ref = ManifestMap()
                    ref["name"] = .string(backend.service ?? "")
                    ref["port"] = .int(port(of: backend.service ?? ""))
                    if route.backends != nil { ref["weight"] = .int(backend.weight ?? 1) }
                    return .map(ref)
                })
            if let mirror = route.mirror, let service = mirror.service {
                var filter = ManifestMap()
                filter["backendRef"] = ["name": .string(service), "port": .int(port(of: service))]
                if let percent = mirror.percent, percent < 100 { filter["percent"] = .int(Int(percent.rounded())) }
                rule["filters"] = [["type": "RequestMirror", "requestMirror": .map(filter)]]
            }
            if let timeout = route.timeout { rule["timeouts"] = ["request": .string("\(Self.seconds(timeout.duration))s")] }
            warnAboutGatewayOnly(route, at: path, sticky: "sessionPersistence (experimental)")

            var spec = ManifestMap()
            spec.set("parentRefs", [["name": .string(Self.gatewayName)]], comment: "The Gateway of the controller that serves these routes.")
            if let host = route.host { spec["hostnames"] = [.string(host)] }
            spec["rules"] = [.map(rule)]
            var httpRoute = object("gateway.networking.k8s.io/v1", "HTTPRoute", Self.objectName(name), component: Self.gatewayName)
            httpRoute["spec"] = .map(spec)
            documents.append(ManifestDocument(.map(httpRoute), comment: "Route \(name)."))
        }
        return documents
    }

    mutating func ingress() -> ManifestDocument {
        var hosts: [(host: String?, paths: [Manifest])] = []
        for (index, (route, name)) in routeSpecs.enumerated() {
            let path = "gateway.routes[\(index)]"
            if route.methods != nil { warn("\(path).methods", "an Ingress matches every method") }
            if route.headers != nil { warn("\(path).headers", "an Ingress cannot match headers") }
            if route.queryParams != nil { warn("\(path).queryParams", "an Ingress cannot match query parameters") }
            if route.mirror != nil { warn("\(path).mirror", "an Ingress cannot mirror requests") }
            if route.timeout != nil { warn("\(path).timeout", "an Ingress has no timeout; set it with the controller's annotations") }
            var service = route.service
            if let backends = route.backends, !backends.isEmpty {
                let heaviest = backends.max { ($0.weight ?? 1) < ($1.weight ?? 1) }!
                service = heaviest.service
                warn("\(path).backends", "an Ingress has one backend: route \(name) goes to \(heaviest.service ?? "") alone")
            }
            warnAboutGatewayOnly(route, at: path, sticky: nil)
            let entry: Manifest = [
                "path": .string(route.path ?? "/"),
                "pathType": route.pathType == .exact ? "Exact" : "Prefix",
                "backend": ["service": ["name": .string(service ?? ""), "port": ["number": .int(port(of: service ?? ""))]]],
            ]
            if let position = hosts.firstIndex(where: { $0.host == route.host }) {
                hosts[position].paths.append(entry)
            } else {
                hosts.append((route.host, [entry]))
            }
        }
        var ingress = object("networking.k8s.io/v1", "Ingress", Self.gatewayName, component: Self.gatewayName)
        var spec = ManifestMap()
        spec.set("ingressClassName", "nginx", comment: "The IngressClass of the controller that serves these routes.")
        spec["rules"] = .list(
            hosts.map { group in
                var rule = ManifestMap()
                if let host = group.host { rule["host"] = .string(host) }
                rule["http"] = ["paths": .list(group.paths)]
                return .map(rule)
            })
        ingress["spec"] = .map(spec)
        return ManifestDocument(.map(ingress), comment: "The file's routes as one Ingress; what it cannot express is listed by gantry export.")
    }

    /// What gantry's routes do that neither object kind carries.
    private mutating func warnAboutGatewayOnly(_ route: RouteSpec, at path: String, sticky: String?) {
        if let policies = route.policies, !policies.isEmpty {
            warn("\(path).policies", "\(policies.joined(separator: ", ")) run in gantry only: the other controller must enforce them itself")
        }
        if route.retries != nil { warn("\(path).retries", "retries are not in HTTPRoute v1 or Ingress") }
        if route.sticky != nil {
            warn("\(path).sticky", sticky.map { "a sticky split needs \($0)" } ?? "an Ingress cannot split or stick")
        }
        if route.tunnel != nil { warn("\(path).tunnel", "tunnel timeouts are the controller's own settings") }
        if let upgrades = route.upgrades, upgrades != ["websocket"] {
            warn("\(path).upgrades", "which upgrades pass is the controller's own setting")
        }
    }
}
