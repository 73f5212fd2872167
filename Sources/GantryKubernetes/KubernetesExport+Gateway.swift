import GantryConfig
import GantryCore
import Yams

/// gantry itself in the cluster: a Deployment running `gantry up --kubernetes` on a ConfigMap
/// of the file's gateway parts, its Service of type LoadBalancer, and the ServiceAccount and
/// Role that let it read (only) Services and EndpointSlices; Redis when a rate limit shares one.
extension KubernetesExport {
    static let configDirectory = "/etc/gantry"
    static let stateDirectory = "/var/lib/gantry"
    static let redisPort = 6379

    mutating func gatewayObjects() throws -> [ManifestDocument] {
        let name = Self.gatewayName
        var documents: [ManifestDocument] = []
        documents.append(ManifestDocument(.map(object("v1", "ServiceAccount", name, component: name))))
        var role = object("rbac.authorization.k8s.io/v1", "Role", name, component: name)
        role["rules"] = [
            ["apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]],
            ["apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]],
        ]
        documents.append(ManifestDocument(.map(role), comment: "gantry --kubernetes reads the endpoints of its services; nothing else."))
        var binding = object("rbac.authorization.k8s.io/v1", "RoleBinding", name, component: name)
        binding["roleRef"] = ["apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": .string(name)]
        binding["subjects"] = [["kind": "ServiceAccount", "name": .string(name), "namespace": .string(options.namespace)]]
        documents.append(ManifestDocument(.map(binding)))

        let (config, listeners, secrets) = try gatewayConfig()
        var configMap = object("v1", "ConfigMap", name, component: name)
        configMap["data"] = ["gantry.yaml": .string(config)]
        documents.append(
            ManifestDocument(.map(configMap), comment: "The gateway parts of \(sourceName): listeners, routes, policies and how services are balanced.\ngantry applies a changed ConfigMap live once kubelet has updated the mounted file."))
        documents.append(ManifestDocument(gatewayDeployment(listeners: listeners, secrets: secrets), comment: secretsComment(secrets)))
        documents.append(loadBalancerService(listeners: listeners))
        var budget = object("policy/v1", "PodDisruptionBudget", name, component: name)
        budget["spec"] = ["maxUnavailable": 1, "selector": ["matchLabels": selector(name)]]
        documents.append(ManifestDocument(.map(budget)))
        return documents
    }

    /// A listener as the cluster sees it: its name, its port (never 0), and the Secrets of its
    /// certificate files.
    struct GatewayListener {
        let name: String
        let port: Int
    }

    struct CertificateSecret {
        let name: String
        let certificate: String
        let key: String
    }

    /// The ConfigMap's gantry.yaml: the file's gateway sections, with what only makes sense on
    /// one machine changed for a pod (listeners on every address, the state in an emptyDir,
    /// certificates from Secrets, Redis by its Service's name) and the parts the cluster runs
    /// itself left out (pods, autoscaling, cluster IPs, DNS).
    private mutating func gatewayConfig() throws -> (String, [GatewayListener], [CertificateSecret]) {
        guard case .map(var file) = Self.manifest(from: root) else { throw Failure(description: "the file is not a mapping") }
        file["dns"] = nil
        var runtime = file["runtime"]?.map ?? ManifestMap()
        runtime["stateDirectory"] = .string(Self.stateDirectory)
        file["runtime"] = .map(runtime)

        var listeners: [GatewayListener] = []
        var secrets: [CertificateSecret] = []
        if case .map(var loadBalancer)? = file["loadBalancer"], case .list(let items)? = loadBalancer["listeners"] {
            var rewritten: [Manifest] = []
            for (index, item) in items.enumerated() {
                guard case .map(var listener) = item else { continue }
                let settings = snapshot.listeners.first { $0.name == (listener["name"]?.string ?? "listener-\(index)") }
                let listenerName = settings?.name ?? "listener-\(index)"
                var port = settings?.port ?? 0
                if port == 0 {
                    port = 8080 + index
                    warn("loadBalancer.listeners[\(index)].port", "0 (any free port) cannot be a Service's port: the cluster listens on \(port)")
                    listener["port"] = .int(port)
                }
                listener["address"] = "0.0.0.0"
                if case .map(var tls)? = listener["tls"], case .list(let certificates)? = tls["certificates"] {
                    var mounted: [Manifest] = []
                    for (position, certificate) in certificates.enumerated() {
                        let secret = Self.objectName("\(Self.gatewayName)-tls-\(listenerName)-\(position)")
                        secrets.append(
                            CertificateSecret(
                                name: secret, certificate: certificate["certificate"]?.string ?? "", key: certificate["key"]?.string ?? ""))
                        mounted.append(["certificate": .string("\(Self.configDirectory)/tls/\(secret)/tls.crt"), "key": .string("\(Self.configDirectory)/tls/\(secret)/tls.key")])
                    }
                    tls["certificates"] = .list(mounted)
                    listener["tls"] = .map(tls)
                }
                if listener["tls"]?["selfSigned"] != nil {
                    warn(
                        "loadBalancer.listeners[\(index)].tls.selfSigned",
                        "each gantry replica signs its own certificate with its own local CA; give the listener certificates from a Secret (cert-manager) for clients to trust")
                }
                rewritten.append(.map(listener))
                listeners.append(GatewayListener(name: Self.portName(listenerName), port: port))
            }
            loadBalancer["listeners"] = .list(rewritten)
            file["loadBalancer"] = .map(loadBalancer)
        }

        if case .map(var gateway)? = file["gateway"], case .list(var policies)? = gateway["policies"] {
            for index in redisStores {
                guard case .map(var policy) = policies[index], case .map(var limit)? = policy["rateLimit"], case .map(var store)? = limit["store"]
                else { continue }
                store["redis"] = .string("\(Self.redisName):\(Self.redisPort)")
                limit["store"] = .map(store)
                policy["rateLimit"] = .map(limit)
                policies[index] = .map(policy)
            }
            gateway["policies"] = .list(policies)
            file["gateway"] = .map(gateway)
        }

        if case .list(let services)? = file["services"] {
            file["services"] = .list(
                services.map { service in
                    guard case .map(var map) = service else { return service }
                    for key in ["pods", "autoscaling", "clusterIP", "endpoints", "port"] { map[key] = nil }
                    return .map(map)
                })
        }
        if case .map(var accessLog)? = file["accessLog"], let path = accessLog["path"]?.string, path != "stdout", path != "stderr" {
            warn("accessLog.path", "\(path) would be a file inside the pod: the access log goes to stdout, where the cluster collects logs")
            accessLog["path"] = "stdout"
            file["accessLog"] = .map(accessLog)
        }
        warnAboutFiles(.map(file), path: "")

        let header = "# The gateway parts of \(sourceName), for `gantry up --kubernetes` (written by gantry export kubernetes).\n"
        return (header + ManifestDocument(.map(file)).yaml, listeners, secrets)
    }

    /// Files the gateway reads (keys, schemas, secrets) are not in the ConfigMap: each is named
    /// so that it can be mounted at the same path.
    private mutating func warnAboutFiles(_ node: Manifest, path: String) {
        switch node {
        case .map(let map):
            for entry in map.entries {
                let here = path.isEmpty ? entry.key : "\(path).\(entry.key)"
                if entry.key == "file" || entry.key.hasSuffix("File"), let value = entry.value.string {
                    warn(here, "the gateway reads \(value): mount it into the gantry pods at that path (a Secret or ConfigMap volume)")
                } else {
                    warnAboutFiles(entry.value, path: here)
                }
            }
        case .list(let items):
            for (index, item) in items.enumerated() { warnAboutFiles(item, path: "\(path)[\(index)]") }
        default:
            break
        }
    }

    private func secretsComment(_ secrets: [CertificateSecret]) -> String? {
        guard !secrets.isEmpty else { return nil }
        return (["The listeners' certificates come from Secrets; create them from the files the file names:"]
            + secrets.map { "  kubectl -n \(options.namespace) create secret tls \($0.name) --cert=\($0.certificate) --key=\($0.key)" })
            .joined(separator: "\n")
    }

    private func gatewayDeployment(listeners: [GatewayListener], secrets: [CertificateSecret]) -> Manifest {
        let name = Self.gatewayName
        var container = ManifestMap()
        container["name"] = .string(name)
        container["image"] = .string(options.image)
        container["args"] = ["up", .string("\(Self.configDirectory)/gantry.yaml"), "--kubernetes"]
        container["ports"] = .list(listeners.map { ["name": .string($0.name), "containerPort": .int($0.port), "protocol": "TCP"] })
        if let first = listeners.first {
            let probe: Manifest = [
                "tcpSocket": ["port": .string(first.name)], "initialDelaySeconds": 0, "periodSeconds": 5, "timeoutSeconds": 1,
                "successThreshold": 1, "failureThreshold": 3,
            ]
            container["readinessProbe"] = probe
            container["livenessProbe"] = probe
        }
        container["resources"] = ["requests": ["cpu": "250m", "memory": "64Mi"]]
        var mounts: [Manifest] = [
            ["name": "config", "mountPath": .string(Self.configDirectory), "readOnly": true],
            ["name": "state", "mountPath": .string(Self.stateDirectory)],
        ]
        var volumes: [Manifest] = [
            ["name": "config", "configMap": ["name": .string(name)]],
            ["name": "state", "emptyDir": [:]],
        ]
        for secret in secrets {
            mounts.append(["name": .string(secret.name), "mountPath": .string("\(Self.configDirectory)/tls/\(secret.name)"), "readOnly": true])
            volumes.append(["name": .string(secret.name), "secret": ["secretName": .string(secret.name)]])
        }
        container["volumeMounts"] = .list(mounts)

        var podSpec = ManifestMap()
        podSpec["serviceAccountName"] = .string(name)
        podSpec.set(
            "terminationGracePeriodSeconds", .int(Self.seconds(snapshot.shutdownGracePeriod) + 5),
            comment: "runtime.shutdownGracePeriod, and a moment for gantry to exit after its drain.")
        podSpec["containers"] = [.map(container)]
        podSpec["volumes"] = .list(volumes)

        var spec = ManifestMap()
        spec["replicas"] = .int(options.gatewayReplicas)
        spec["selector"] = ["matchLabels": selector(name)]
        spec["strategy"] = ["type": "RollingUpdate", "rollingUpdate": ["maxSurge": 1, "maxUnavailable": 0]]
        spec["template"] = ["metadata": ["labels": labels(name)], "spec": .map(podSpec)]
        var deployment = object("apps/v1", "Deployment", name, component: name)
        deployment["spec"] = .map(spec)
        return .map(deployment)
    }

    /// The listeners behind the cloud's load balancer; the DNS zone named for ExternalDNS.
    private func loadBalancerService(listeners: [GatewayListener]) -> ManifestDocument {
        let (hostnames, records) = dnsNames()
        var service = object("v1", "Service", Self.gatewayName, component: Self.gatewayName)
        if !hostnames.isEmpty {
            service["metadata"] = metadata(
                Self.gatewayName, component: Self.gatewayName,
                annotations: ["external-dns.alpha.kubernetes.io/hostname": .string(hostnames.joined(separator: ","))])
        }
        var spec = ManifestMap()
        spec["type"] = "LoadBalancer"
        spec.set(
            "externalTrafficPolicy", "Local",
            comment: "Local keeps the client's address, which gantry's clientIP rate limits and IP filters use.")
        spec["selector"] = selector(Self.gatewayName)
        spec["ports"] = .list(listeners.map { ["name": .string($0.name), "port": .int($0.port), "targetPort": .string($0.name), "protocol": "TCP"] })
        service["spec"] = .map(spec)
        var comment = "The load balancer in front of the gateway replicas."
        if !records.isEmpty {
            comment += "\nThe file's DNS zone is the cloud's now; ExternalDNS creates the names in the annotation. Its other records:\n"
                + records.map { "  \($0)" }.joined(separator: "\n")
        }
        return ManifestDocument(.map(service), comment: comment)
    }

    /// The zone's names that point at a listener (A and AAAA records with `listener:`, and
    /// CNAMEs to them), and every other record as text.
    private func dnsNames() -> (hostnames: [String], others: [String]) {
        var hostnames: [String] = []
        var others: [String] = []
        for zone in spec.dns?.zones ?? [] {
            guard let origin = zone.origin?.trimmingSuffix(".") else { continue }
            func full(_ name: String?) -> String {
                guard let name, name != "@" else { return origin }
                let trimmed = name.trimmingSuffix(".")
                return trimmed == origin || trimmed.hasSuffix(".\(origin)") ? trimmed : "\(trimmed).\(origin)"
            }
            for record in zone.records ?? [] {
                let name = full(record.name)
                let type = record.type?.uppercased() ?? ""
                if (type == "A" || type == "AAAA"), record.listener != nil {
                    hostnames.append(name)
                } else if type == "CNAME", let target = record.target, hostnames.contains(full(target)) {
                    hostnames.append(name)
                } else {
                    let data = [record.address, record.target, record.text?.map { "\"\($0)\"" }.joined(separator: " "), record.port.map(String.init)]
                        .compactMap { $0 }.joined(separator: " ")
                    others.append("\(name) \(type) \(data)")
                }
            }
        }
        var seen = Set<String>()
        return (hostnames.filter { seen.insert($0).inserted }, others)
    }

    // MARK: Redis

    func redisObjects() -> [ManifestDocument] {
        let name = Self.redisName
        var deployment = object("apps/v1", "Deployment", name, component: name)
        deployment["spec"] = [
            "replicas": 1,
            "selector": ["matchLabels": selector(name)],
            "template": [
                "metadata": ["labels": labels(name)],
                "spec": [
                    "containers": [
                        [
                            "name": "redis", "image": "redis:7-alpine",
                            "args": ["--save", "", "--appendonly", "no"],
                            "ports": [["name": "redis", "containerPort": .int(Self.redisPort), "protocol": "TCP"]],
                            "readinessProbe": [
                                "tcpSocket": ["port": "redis"], "initialDelaySeconds": 0, "periodSeconds": 5, "timeoutSeconds": 1,
                                "successThreshold": 1, "failureThreshold": 3,
                            ],
                        ]
                    ]
                ],
            ],
        ]
        var service = object("v1", "Service", name, component: name)
        service["spec"] = [
            "type": "ClusterIP", "selector": selector(name),
            "ports": [["name": "redis", "port": .int(Self.redisPort), "targetPort": "redis", "protocol": "TCP"]],
        ]
        return [
            ManifestDocument(.map(deployment), comment: "The store the gateway replicas share their rate limits in (rateLimit store: redis).\nCounters only: nothing is saved to disk."),
            ManifestDocument(.map(service)),
        ]
    }

    /// A YAML node as a manifest: plain scalars (numbers, booleans) kept as written.
    static func manifest(from node: Node) -> Manifest {
        switch node {
        case .scalar(let scalar):
            return scalar.style == .plain && !scalar.string.contains("\n") ? .raw(scalar.string) : .string(scalar.string)
        case .mapping(let mapping):
            var map = ManifestMap()
            for (key, value) in mapping { map[key.string ?? ""] = manifest(from: value) }
            return .map(map)
        case .sequence(let sequence):
            return .list(sequence.map(manifest(from:)))
        case .alias:
            return .string("")
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
