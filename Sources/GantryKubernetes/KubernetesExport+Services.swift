import GantryConfig
import GantryCore

/// A service's objects: with pods, a Deployment, its Service, HorizontalPodAutoscaler and
/// PodDisruptionBudget; with static endpoints, a selector-less Service and its EndpointSlices.
extension KubernetesExport {
    /// What a service's port is called, on the Service and on the pods' container.
    static func portName(for service: ServiceSettings) -> String {
        switch service.upstreamProtocol {
        case .h2c: return "h2c"
        case .h2: return "h2"
        case .http1: return service.tls == nil ? "http" : "https"
        }
    }

    /// How the port's protocol is told to the cluster (KEP-3726's standard application protocols).
    static func appProtocol(for service: ServiceSettings) -> String {
        switch service.upstreamProtocol {
        case .h2c: return "kubernetes.io/h2c"
        case .h2: return "https"
        case .http1: return service.tls == nil ? "http" : "https"
        }
    }

    static func servicePort(_ service: ServiceSettings) -> Int {
        switch service.clusterIP {
        case .automatic(let port), .fixed(_, let port): return port
        case .none: return service.pods?.port ?? service.staticEndpoints.first?.port ?? 80
        }
    }

    mutating func podObjects(_ service: ServiceSettings, spec: PodSpec?) -> [ManifestDocument] {
        let template = service.pods!
        let path = "services[\(service.index)]"
        var documents = [ManifestDocument(deployment(service, template: template, image: spec?.image, path: path))]
        documents.append(clusterService(service, template: template))
        if let autoscaling = service.autoscaling {
            documents.append(ManifestDocument(horizontalPodAutoscaler(service, autoscaling, path: path)))
        }
        var budget = object("policy/v1", "PodDisruptionBudget", service.name, component: service.name)
        budget["spec"] = ["maxUnavailable": 1, "selector": ["matchLabels": selector(service.name)]]
        documents.append(ManifestDocument(.map(budget), comment: "At most one \(service.name) pod evicted at a time by a node drain."))
        return documents
    }

    private mutating func deployment(_ service: ServiceSettings, template: PodTemplate, image: String?, path: String) -> Manifest {
        var container = ManifestMap()
        container["name"] = .string(service.name)
        var imageNote: String?
        if image == nil {
            imageNote = "pods.image is not set: gantry's image, which holds gantry and its example programs."
            if template.command.first != "gantry" {
                warn("\(path).pods.image", "not set: gantry's image cannot run \(template.command.first ?? "the command"); name an image that holds it")
            }
        }
        container.set("image", .string(image ?? options.image), comment: imageNote)
        container["command"] = .list(template.command.map { .string($0) })
        if !template.args.isEmpty { container["args"] = .list(template.args.map { .string($0) }) }
        if let workingDir = template.workingDir { container["workingDir"] = .string(workingDir) }
        container["ports"] = [["name": .string(Self.portName(for: service)), "containerPort": .int(template.port), "protocol": "TCP"]]
        container.set("env", .list(environment(service, template: template)), comment: "What gantry gives every pod, then the file's env.")
        var requests = ManifestMap()
        if let millicores = template.cpuRequestMillicores { requests["cpu"] = .string(Self.cpu(millicores)) }
        if let bytes = template.memoryRequestBytes { requests["memory"] = .string(Self.memory(bytes)) }
        if !requests.isEmpty { container["resources"] = ["requests": .map(requests)] }
        for (key, probe) in [("startupProbe", template.startupProbe), ("readinessProbe", template.readinessProbe), ("livenessProbe", template.livenessProbe)] {
            if let probe { container[key] = Self.probe(probe) }
        }

        var podSpec = ManifestMap()
        podSpec.set(
            "terminationGracePeriodSeconds", .int(Self.seconds(template.terminationGracePeriod)),
            comment: "restartBackoff has no field here: kubelet's CrashLoopBackOff starts at 10s and doubles to 5m.")
        if template.restartPolicy != .always {
            warn("\(path).pods.restartPolicy", "a Deployment's pods always restart (restartPolicy \(template.restartPolicy.rawValue) needs a Job)")
        }
        podSpec["containers"] = [.map(container)]

        var deploymentSpec = ManifestMap()
        if let autoscaling = service.autoscaling {
            deploymentSpec.set(
                "replicas", .int(autoscaling.minReplicas),
                comment: "The HorizontalPodAutoscaler scales this between \(autoscaling.minReplicas) and \(autoscaling.maxReplicas).")
        } else {
            deploymentSpec["replicas"] = .int(template.replicas)
        }
        deploymentSpec["selector"] = ["matchLabels": selector(service.name)]
        deploymentSpec["strategy"] = [
            "type": "RollingUpdate",
            "rollingUpdate": ["maxSurge": Self.amount(template.rollout.maxSurge), "maxUnavailable": Self.amount(template.rollout.maxUnavailable)],
        ]
        deploymentSpec["template"] = ["metadata": ["labels": labels(service.name)], "spec": .map(podSpec)]
        var deployment = object("apps/v1", "Deployment", service.name, component: service.name)
        deployment["spec"] = .map(deploymentSpec)
        return .map(deployment)
    }

    /// `PORT`, `POD_IP`, `POD_NAME`, `HOSTNAME`, `SERVICE_NAME` as gantry sets them (the pod's IP
    /// and name from the downward API), then the file's variables.
    private func environment(_ service: ServiceSettings, template: PodTemplate) -> [Manifest] {
        var env: [Manifest] = [
            ["name": "PORT", "value": .string(String(template.port))],
            ["name": "POD_IP", "valueFrom": ["fieldRef": ["fieldPath": "status.podIP"]]],
            ["name": "POD_NAME", "valueFrom": ["fieldRef": ["fieldPath": "metadata.name"]]],
            ["name": "SERVICE_NAME", "value": .string(service.name)],
        ]
        env.removeAll { entry in template.env.contains { $0.name == entry["name"]?.string } }
        for variable in template.env {
            env.append(["name": .string(variable.name), "value": .string(variable.value)])
        }
        return env
    }

    private func clusterService(_ service: ServiceSettings, template: PodTemplate) -> ManifestDocument {
        var spec = ManifestMap()
        var comment: String?
        switch service.clusterIP {
        case .none:
            spec.set("clusterIP", "None", comment: "clusterIP: None in the file: a headless Service.")
        case .fixed(let address, _):
            comment = "The file's clusterIP \(address) is a loopback address of gantry's machine: the cluster assigns its own."
            spec["type"] = "ClusterIP"
        case .automatic:
            spec["type"] = "ClusterIP"
        }
        spec["selector"] = selector(service.name)
        spec["ports"] = [
            [
                "name": .string(Self.portName(for: service)), "port": .int(Self.servicePort(service)),
                "targetPort": .string(Self.portName(for: service)), "protocol": "TCP", "appProtocol": .string(Self.appProtocol(for: service)),
            ]
        ]
        var object = object("v1", "Service", service.name, component: service.name)
        object["spec"] = .map(spec)
        return ManifestDocument(.map(object), comment: comment)
    }

    /// A Kubernetes probe with every field written out, the defaults gantry applied included.
    static func probe(_ probe: Probe) -> Manifest {
        var map = ManifestMap()
        switch probe.action {
        case .httpGet(let path, let port, let headers):
            var action = ManifestMap()
            action["path"] = .string(path)
            action["port"] = .int(port)
            action["scheme"] = "HTTP"
            if !headers.isEmpty {
                action["httpHeaders"] = .list(headers.map { ["name": .string($0.name), "value": .string($0.value)] })
            }
            map["httpGet"] = .map(action)
        case .tcpSocket(let port):
            map["tcpSocket"] = ["port": .int(port)]
        case .grpc(let port, let service):
            map["grpc"] = service.isEmpty ? ["port": .int(port)] : ["port": .int(port), "service": .string(service)]
        case .exec(let command):
            map["exec"] = ["command": .list(command.map { .string($0) })]
        }
        map["initialDelaySeconds"] = .int(seconds(probe.initialDelay))
        map["periodSeconds"] = .int(seconds(probe.period))
        map["timeoutSeconds"] = .int(seconds(probe.timeout))
        map["successThreshold"] = .int(probe.successThreshold)
        map["failureThreshold"] = .int(probe.failureThreshold)
        return .map(map)
    }

    static func amount(_ amount: RolloutStrategy.Amount) -> Manifest {
        switch amount {
        case .count(let count): return .int(count)
        case .percent(let percent): return .string("\(percent)%")
        }
    }

    static func cpu(_ millicores: Int) -> String {
        millicores % 1000 == 0 ? String(millicores / 1000) : "\(millicores)m"
    }

    static func memory(_ bytes: Int) -> String {
        for (suffix, unit) in [("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] where bytes % unit == 0 {
            return "\(bytes / unit)\(suffix)"
        }
        return String(bytes)
    }

    // MARK: Autoscaling

    private mutating func horizontalPodAutoscaler(_ service: ServiceSettings, _ settings: AutoscalingSettings, path: String) -> Manifest {
        var metrics: [Manifest] = []
        var notes: [String] = []
        for target in settings.targets {
            switch target {
            case .cpuUtilization(let percent):
                metrics.append(["type": "Resource", "resource": ["name": "cpu", "target": ["type": "Utilization", "averageUtilization": .int(Int(percent.rounded()))]]])
            case .averageValue(let metric, let value):
                let name = metric == "inFlight" ? "gantry_requests_in_flight" : "gantry_requests_per_second"
                metrics.append(["type": "Pods", "pods": ["metric": ["name": .string(name)], "target": ["type": "AverageValue", "averageValue": Self.quantity(value)]]])
                notes.append("\(name) is a per-pod metric gantry's /metrics serves; a metrics adapter (prometheus-adapter) must offer it to the HPA.")
            case .object(let metric, let quantity):
                let source = settings.sources[metric]
                var selector = ManifestMap()
                switch source {
                case .routeRequests(let route)?: selector["route"] = .string(Self.objectName(route))
                case .serviceRequests(let name)?: selector["service"] = .string(name)
                default: break
                }
                metrics.append([
                    "type": "Object",
                    "object": [
                        "describedObject": ["apiVersion": "v1", "kind": "Service", "name": .string(Self.gatewayName)],
                        "metric": ["name": "gantry_requests_per_second", "selector": ["matchLabels": .map(selector)]],
                        "target": Self.target(quantity),
                    ],
                ])
                notes.append("The Object metric is gantry's requests per second for a route or service, read from the gateway's /metrics through a metrics adapter.")
            case .external(let metric, let quantity):
                guard case .prometheus(_, _, _, let series)? = settings.sources[metric] else { continue }
                var metricMap = ManifestMap()
                metricMap["name"] = .string(series.name)
                if !series.labels.isEmpty {
                    var labels = ManifestMap()
                    for key in series.labels.keys.sorted() { labels[key] = .string(series.labels[key]!) }
                    metricMap["selector"] = ["matchLabels": .map(labels)]
                }
                metrics.append(["type": "External", "external": ["metric": .map(metricMap), "target": Self.target(quantity)]])
                notes.append("External metric \(series.name): gantry read it from a Prometheus endpoint; in a cluster an external metrics adapter serves it.")
            }
        }
        var spec = ManifestMap()
        spec["scaleTargetRef"] = ["apiVersion": "apps/v1", "kind": "Deployment", "name": .string(service.name)]
        spec["minReplicas"] = .int(settings.minReplicas)
        spec["maxReplicas"] = .int(settings.maxReplicas)
        spec["metrics"] = .list(metrics)
        spec["behavior"] = ["scaleUp": Self.rules(settings.behavior.scaleUp), "scaleDown": Self.rules(settings.behavior.scaleDown)]
        var hpa = object("autoscaling/v2", "HorizontalPodAutoscaler", service.name, component: service.name)
        let syncNote = "autoscaling.syncPeriod (\(Self.seconds(settings.syncPeriod))s) has no field here: the controller manager's --horizontal-pod-autoscaler-sync-period (15s by default) sets it for the cluster."
        hpa.set("spec", .map(spec), comment: ([syncNote] + Set(notes).sorted()).joined(separator: "\n"))
        return .map(hpa)
    }

    private static func target(_ quantity: Autoscaling.Quantity) -> Manifest {
        switch quantity {
        case .value(let value): return ["type": "Value", "value": Self.quantity(value)]
        case .averageValue(let value): return ["type": "AverageValue", "averageValue": Self.quantity(value)]
        }
    }

    private static func rules(_ rules: Autoscaling.ScalingRules) -> Manifest {
        [
            "stabilizationWindowSeconds": .int(rules.stabilizationWindowSeconds),
            "selectPolicy": .string(rules.selectPolicy.rawValue),
            "policies": .list(rules.policies.map { ["type": .string($0.type.rawValue), "value": .int($0.value), "periodSeconds": .int($0.periodSeconds)] }),
        ]
    }

    // MARK: Static endpoints

    /// A Service without a selector, and one EndpointSlice per port and address family: the
    /// cluster's way of naming addresses it does not run.
    mutating func staticObjects(_ service: ServiceSettings) -> [ManifestDocument] {
        for (index, endpoint) in service.staticEndpoints.enumerated() where endpoint.host.hasPrefix("127.") || endpoint.host == "::1" || endpoint.host == "localhost" {
            warn("services[\(service.index)].endpoints[\(index)]", "\(endpoint) is this machine's loopback; in the cluster the EndpointSlice must name an address the pods can reach")
        }
        var spec = ManifestMap()
        let port = Self.servicePort(service)
        spec["ports"] = [["name": .string(Self.portName(for: service)), "port": .int(port), "protocol": "TCP", "appProtocol": .string(Self.appProtocol(for: service))]]
        var serviceObject = object("v1", "Service", service.name, component: service.name)
        serviceObject["spec"] = .map(spec)
        var documents = [ManifestDocument(.map(serviceObject), comment: "\(service.name)'s endpoints are the file's: a Service without a selector, and EndpointSlices naming them.")]
        var groups: [(family: String, port: Int, hosts: [String])] = []
        for endpoint in service.staticEndpoints {
            let family = IPv4Address(endpoint.host) != nil ? "IPv4" : endpoint.host.contains(":") ? "IPv6" : "FQDN"
            if let index = groups.firstIndex(where: { $0.family == family && $0.port == endpoint.port }) {
                groups[index].hosts.append(endpoint.host)
            } else {
                groups.append((family, endpoint.port, [endpoint.host]))
            }
        }
        for (index, group) in groups.enumerated() {
            var slice = ManifestMap()
            slice["apiVersion"] = "discovery.k8s.io/v1"
            slice["kind"] = "EndpointSlice"
            var labels = labels(service.name).map!
            labels["kubernetes.io/service-name"] = .string(service.name)
            labels["endpointslice.kubernetes.io/managed-by"] = "gantry"
            slice["metadata"] = ["name": .string("\(service.name)-\(index + 1)"), "namespace": .string(options.namespace), "labels": .map(labels)]
            slice["addressType"] = .string(group.family)
            slice["ports"] = [["name": .string(Self.portName(for: service)), "port": .int(group.port), "protocol": "TCP", "appProtocol": .string(Self.appProtocol(for: service))]]
            slice["endpoints"] = .list(group.hosts.map { ["addresses": [.string($0)], "conditions": ["ready": true]] })
            documents.append(ManifestDocument(.map(slice)))
        }
        return documents
    }
}
