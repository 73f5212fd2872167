import Foundation
import GantryConfig
import GantryCore
import GantryExamples
import GantryKubernetes
import GantryTestSupport
import GantryTLS
import Testing
import Yams

/// `gantry export kubernetes`: the manifests parse back to what the file says, field by field,
/// and the Kubernetes OpenAPI schemas of the current and the two previous minor versions accept
/// every object (kubernetes-validate, offline).
@Suite struct KubernetesExportTests {
    /// A file with what the built-in example leaves out: static endpoints, HTTP/2 upstreams,
    /// every probe kind, a shared rate limit, certificate files, Object and External metrics.
    static let rich = """
        runtime: {shutdownGracePeriod: 20s}
        accessLog: {path: /var/log/gantry/access.log}
        dns:
          zones:
            - origin: shop.example
              records:
                - {type: A, listener: web}
                - {name: api, type: CNAME, target: shop.example}
                - {type: MX, preference: 10, target: mail.shop.example}
        loadBalancer:
          listeners:
            - {name: web, port: 0}
            - {name: secure, port: 8443, tls: {certificates: [{certificate: certs/shop.pem, key: certs/shop.key}]}}
        gateway:
          policies:
            - name: shared-limit
              rateLimit: {requests: 10, per: 1s, store: {redis: 127.0.0.1:6379}}
          routes:
            - {name: orders, host: shop.example, path: /orders, methods: [GET, POST], headers: [{name: X-Version, value: "2"}], service: orders, policies: [shared-limit], timeout: 5s}
            - {name: canary, host: "*.shop.example", path: /app, pathType: Exact, backends: [{service: orders, weight: 95}, {service: legacy, weight: 5}], mirror: {service: grpc-api, percent: 10}}
            - {name: search, path: /search, queryParams: [{name: q, regex: "[a-z]+"}], service: legacy}
        services:
          - name: orders
            port: 80
            pods:
              command: [python3, orders.py]
              image: registry.example/orders:1.4
              args: ["--workers", "2"]
              env: [{name: MODE, value: "yes"}, {name: PORT, value: "9000"}]
              workingDir: /srv
              replicas: 3
              port: 9000
              resources: {requests: {cpu: 1500m, memory: 1536MiB}}
              terminationGracePeriodSeconds: 45
              strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
              startupProbe: {tcpSocket: {}, periodSeconds: 2, failureThreshold: 30}
              readinessProbe: {httpGet: {path: /ready, httpHeaders: [{name: X-Probe, value: "1"}]}, timeoutSeconds: 2, successThreshold: 2}
              livenessProbe: {exec: {command: [cat, /tmp/alive]}, initialDelaySeconds: 10}
            autoscaling:
              minReplicas: 3
              maxReplicas: 12
              metrics:
                - {inFlight: {averageValue: 2.5}}
                - {object: {route: orders, value: 300}}
                - {external: {url: "http://127.0.0.1:9100/metrics", series: 'queue_depth{queue="jobs"}', averageValue: 30}}
              behavior:
                scaleUp: {stabilizationWindowSeconds: 30, selectPolicy: Min, policies: [{type: Pods, value: 2, periodSeconds: 60}]}
          - name: grpc-api
            protocol: h2c
            clusterIP: None
            pods:
              command: [gantry, example, echo]
              port: 50051
              readinessProbe: {grpc: {service: shop.Orders}}
          - name: legacy
            endpoints: [10.1.2.3:8080, 10.1.2.4:8080, "legacy.internal:9090"]
        """

    /// The rich file's directory, with the certificate files it names.
    static let directory: String = {
        let directory = GantryProcess.scratchDirectory().appendingPathComponent("certs")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Any PEM pair will do: export only names the files.
        let authority = LocalCertificateAuthority(stateDirectory: directory.path)
        let (certificate, key) = try! authority.leaf(for: ["shop.example"])
        try! FileManager.default.copyItem(atPath: certificate, toPath: directory.appendingPathComponent("shop.pem").path)
        try! FileManager.default.copyItem(atPath: key, toPath: directory.appendingPathComponent("shop.key").path)
        return directory.deletingLastPathComponent().path
    }()

    static func load(_ text: String, named name: String = "rich.yaml") throws -> LoadedConfig {
        switch ConfigLoader.load(yaml: text, file: "\(directory)/\(name)") {
        case .success(let loaded): return loaded
        case .failure(let error): throw error
        }
    }

    static func export(_ text: String, named name: String = "rich.yaml", routes: KubernetesExport.RouteObjects? = nil) throws -> KubernetesExport.Output {
        var options = KubernetesExport.Options(image: "gantry:test")
        options.namespace = "shop"
        options.routes = routes
        return try KubernetesExport.export(try load(text, named: name), options: options)
    }

    /// Every object of the output, parsed back from its text with Yams.
    static func parsed(_ output: KubernetesExport.Output) throws -> [[String: Any]] {
        try output.files.flatMap { file in
            try Yams.load_all(yaml: file.yaml).map { try #require($0 as? [String: Any]) }
        }
    }

    static func find(_ objects: [[String: Any]], _ kind: String, _ name: String) throws -> [String: Any] {
        try #require(objects.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name })
    }

    static func value(_ object: Any?, _ path: String) -> Any? {
        var node = object
        for key in path.split(separator: ".") {
            if let index = Int(key), let list = node as? [Any] {
                node = list.indices.contains(index) ? list[index] : nil
            } else {
                node = (node as? [String: Any])?[String(key)]
            }
        }
        return node
    }

    // MARK: Field by field

    @Test func thePodsDeploymentCarriesTheTemplateFieldByField() throws {
        let loaded = try Self.load(Self.rich)
        let objects = try Self.parsed(try Self.export(Self.rich))
        let template = try #require(loaded.snapshot.service(named: "orders")?.pods)
        let deployment = try Self.find(objects, "Deployment", "orders")
        let container = try #require(Self.value(deployment, "spec.template.spec.containers.0") as? [String: Any])
        #expect(container["image"] as? String == "registry.example/orders:1.4")
        #expect(container["command"] as? [String] == template.command)
        #expect(container["args"] as? [String] == ["--workers", "2"])
        #expect(container["workingDir"] as? String == "/srv")
        #expect(Self.value(container, "ports.0.containerPort") as? Int == 9000)
        #expect(Self.value(container, "resources.requests.cpu") as? String == "1500m")
        #expect(Self.value(container, "resources.requests.memory") as? String == "1536Mi")
        #expect(Self.value(deployment, "spec.template.spec.terminationGracePeriodSeconds") as? Int == 45)
        #expect(Self.value(deployment, "spec.strategy.rollingUpdate.maxSurge") as? Int == 1)
        #expect(Self.value(deployment, "spec.strategy.rollingUpdate.maxUnavailable") as? Int == 0)
        #expect(Self.value(deployment, "spec.replicas") as? Int == 3)

        // The file's env wins over what gantry sets (PORT), and values stay strings ("yes").
        let env = try #require(container["env"] as? [[String: Any]])
        let names = env.compactMap { $0["name"] as? String }
        #expect(names == ["POD_IP", "POD_NAME", "SERVICE_NAME", "MODE", "PORT"])
        #expect(env.first { $0["name"] as? String == "MODE" }?["value"] as? String == "yes")
        #expect(env.first { $0["name"] as? String == "PORT" }?["value"] as? String == "9000")
        #expect(Self.value(env.first { $0["name"] as? String == "POD_IP" }, "valueFrom.fieldRef.fieldPath") as? String == "status.podIP")

        // Probes: every field, with the defaults gantry applied.
        for (key, probe) in [("startupProbe", template.startupProbe!), ("readinessProbe", template.readinessProbe!), ("livenessProbe", template.livenessProbe!)] {
            let written = try #require(container[key] as? [String: Any])
            #expect(written["initialDelaySeconds"] as? Int == Int(probe.initialDelay.components.seconds), "\(key)")
            #expect(written["periodSeconds"] as? Int == Int(probe.period.components.seconds), "\(key)")
            #expect(written["timeoutSeconds"] as? Int == Int(probe.timeout.components.seconds), "\(key)")
            #expect(written["successThreshold"] as? Int == probe.successThreshold, "\(key)")
            #expect(written["failureThreshold"] as? Int == probe.failureThreshold, "\(key)")
        }
        #expect(Self.value(container, "startupProbe.tcpSocket.port") as? Int == 9000)
        #expect(Self.value(container, "startupProbe.failureThreshold") as? Int == 30)
        #expect(Self.value(container, "readinessProbe.httpGet.path") as? String == "/ready")
        #expect(Self.value(container, "readinessProbe.httpGet.port") as? Int == 9000)
        #expect(Self.value(container, "readinessProbe.httpGet.httpHeaders.0.name") as? String == "X-Probe")
        #expect(Self.value(container, "readinessProbe.successThreshold") as? Int == 2)
        #expect(Self.value(container, "livenessProbe.exec.command") as? [String] == ["cat", "/tmp/alive"])
        #expect(Self.value(container, "livenessProbe.periodSeconds") as? Int == 10)

        let grpc = try Self.find(objects, "Deployment", "grpc-api")
        #expect(Self.value(grpc, "spec.template.spec.containers.0.readinessProbe.grpc.port") as? Int == 50051)
        #expect(Self.value(grpc, "spec.template.spec.containers.0.readinessProbe.grpc.service") as? String == "shop.Orders")
    }

    @Test func servicesHPAsAndBudgetsMatchTheFile() throws {
        let loaded = try Self.load(Self.rich)
        let objects = try Self.parsed(try Self.export(Self.rich))
        let orders = try Self.find(objects, "Service", "orders")
        #expect(Self.value(orders, "spec.type") as? String == "ClusterIP")
        #expect(Self.value(orders, "spec.ports.0.port") as? Int == 80)
        #expect(Self.value(orders, "spec.ports.0.targetPort") as? String == "http")
        #expect(Self.value(orders, "spec.selector.app.kubernetes.io/name") == nil)  // a dotted key: read it whole
        #expect((Self.value(orders, "spec.selector") as? [String: String])?["app.kubernetes.io/name"] == "orders")
        let grpc = try Self.find(objects, "Service", "grpc-api")
        #expect(Self.value(grpc, "spec.clusterIP") as? String == "None")
        #expect(Self.value(grpc, "spec.ports.0.appProtocol") as? String == "kubernetes.io/h2c")

        let settings = try #require(loaded.snapshot.service(named: "orders")?.autoscaling)
        let hpa = try Self.find(objects, "HorizontalPodAutoscaler", "orders")
        #expect(hpa["apiVersion"] as? String == "autoscaling/v2")
        #expect(Self.value(hpa, "spec.minReplicas") as? Int == settings.minReplicas)
        #expect(Self.value(hpa, "spec.maxReplicas") as? Int == 12)
        #expect(Self.value(hpa, "spec.scaleTargetRef.name") as? String == "orders")
        #expect(Self.value(hpa, "spec.metrics.0.pods.target.averageValue") as? String == "2500m")
        #expect(Self.value(hpa, "spec.metrics.1.object.target.value") as? String == "300")
        #expect(Self.value(hpa, "spec.metrics.2.external.metric.name") as? String == "queue_depth")
        #expect(Self.value(hpa, "spec.metrics.2.external.metric.selector.matchLabels.queue") as? String == "jobs")
        #expect(Self.value(hpa, "spec.metrics.2.external.target.averageValue") as? String == "30")
        for (direction, rules) in [("scaleUp", settings.behavior.scaleUp), ("scaleDown", settings.behavior.scaleDown)] {
            #expect(Self.value(hpa, "spec.behavior.\(direction).stabilizationWindowSeconds") as? Int == rules.stabilizationWindowSeconds)
            #expect(Self.value(hpa, "spec.behavior.\(direction).selectPolicy") as? String == rules.selectPolicy.rawValue)
            let policies = try #require(Self.value(hpa, "spec.behavior.\(direction).policies") as? [[String: Any]])
            #expect(policies.count == rules.policies.count)
            for (written, policy) in zip(policies, rules.policies) {
                #expect(written["type"] as? String == policy.type.rawValue)
                #expect(written["value"] as? Int == policy.value)
                #expect(written["periodSeconds"] as? Int == policy.periodSeconds)
            }
        }
        #expect(Self.value(hpa, "spec.behavior.scaleUp.selectPolicy") as? String == "Min")
        #expect(Self.value(try Self.find(objects, "PodDisruptionBudget", "orders"), "spec.maxUnavailable") as? Int == 1)

        // Static endpoints: a Service without a selector and a slice per address family and port.
        let legacy = try Self.find(objects, "Service", "legacy")
        #expect(Self.value(legacy, "spec.selector") == nil)
        let ipv4 = try Self.find(objects, "EndpointSlice", "legacy-1")
        #expect(ipv4["addressType"] as? String == "IPv4")
        #expect(Self.value(ipv4, "endpoints.1.addresses.0") as? String == "10.1.2.4")
        #expect((Self.value(ipv4, "metadata.labels") as? [String: String])?["kubernetes.io/service-name"] == "legacy")
        let fqdn = try Self.find(objects, "EndpointSlice", "legacy-2")
        #expect(fqdn["addressType"] as? String == "FQDN")
        #expect(Self.value(fqdn, "ports.0.port") as? Int == 9090)

        for object in objects {
            let labels = Self.value(object, "metadata.labels") as? [String: String]
            #expect(labels?["app.kubernetes.io/managed-by"] == "gantry", "\(object["kind"] ?? "")")
            #expect(Self.value(object, "metadata.namespace") as? String == "shop" || object["kind"] as? String == "Namespace")
        }
    }

    @Test func theGatewayRunsUpKubernetesOnAConfigMapOfTheFilesGatewayParts() throws {
        let output = try Self.export(Self.rich)
        let objects = try Self.parsed(output)
        let role = try Self.find(objects, "Role", "gantry")
        let rules = try #require(role["rules"] as? [[String: Any]])
        #expect(rules.flatMap { $0["resources"] as? [String] ?? [] }.sorted() == ["endpointslices", "services"])
        #expect(rules.allSatisfy { $0["verbs"] as? [String] == ["get", "list", "watch"] })
        _ = try Self.find(objects, "ServiceAccount", "gantry")
        _ = try Self.find(objects, "RoleBinding", "gantry")

        let deployment = try Self.find(objects, "Deployment", "gantry")
        #expect(Self.value(deployment, "spec.replicas") as? Int == 2)
        #expect(Self.value(deployment, "spec.template.spec.serviceAccountName") as? String == "gantry")
        #expect(Self.value(deployment, "spec.template.spec.containers.0.args") as? [String] == ["up", "/etc/gantry/gantry.yaml", "--kubernetes"])
        #expect(Self.value(deployment, "spec.template.spec.terminationGracePeriodSeconds") as? Int == 25)
        let mounts = try #require(Self.value(deployment, "spec.template.spec.volumes") as? [[String: Any]])
        #expect(mounts.contains { Self.value($0, "secret.secretName") as? String == "gantry-tls-secure-0" })

        let service = try Self.find(objects, "Service", "gantry")
        #expect(Self.value(service, "spec.type") as? String == "LoadBalancer")
        let ports = try #require(Self.value(service, "spec.ports") as? [[String: Any]])
        #expect(ports.map { $0["port"] as? Int } == [8080, 8443])
        #expect((Self.value(service, "metadata.annotations") as? [String: String])?["external-dns.alpha.kubernetes.io/hostname"] == "shop.example,api.shop.example")
        #expect(output.files.first { $0.name == "30-gantry.yaml" }!.yaml.contains("#   shop.example MX mail.shop.example"))

        // Redis for the shared rate limit, and the ConfigMap pointing at it.
        _ = try Self.find(objects, "Deployment", "gantry-redis")
        #expect(Self.value(try Self.find(objects, "Service", "gantry-redis"), "spec.ports.0.port") as? Int == 6379)

        // The ConfigMap is a file `gantry up --kubernetes` runs: no pods, every address, Redis by name.
        let text = try #require((try Self.find(objects, "ConfigMap", "gantry")["data"] as? [String: Any])?["gantry.yaml"] as? String)
        #expect(text.contains("/etc/gantry/tls/gantry-tls-secure-0/tls.crt"))
        // The Secret as kubelet mounts it, here.
        let mounted = "\(Self.directory)/mounted/gantry-tls-secure-0"
        try FileManager.default.createDirectory(atPath: mounted, withIntermediateDirectories: true)
        for (from, to) in [("shop.pem", "tls.crt"), ("shop.key", "tls.key")] where !FileManager.default.fileExists(atPath: "\(mounted)/\(to)") {
            try FileManager.default.copyItem(atPath: "\(Self.directory)/certs/\(from)", toPath: "\(mounted)/\(to)")
        }
        let inCluster: LoadedConfig
        let local = text.replacingOccurrences(of: "/etc/gantry/tls/", with: "\(Self.directory)/mounted/")
        switch ConfigLoader.load(yaml: local, file: "configmap", endpointsFromCluster: true) {
        case .success(let loaded): inCluster = loaded
        case .failure(let error): throw error
        }
        #expect(inCluster.snapshot.services.map(\.name) == ["orders", "grpc-api", "legacy"])
        #expect(inCluster.snapshot.services.allSatisfy { $0.pods == nil && $0.staticEndpoints.isEmpty && $0.autoscaling == nil })
        #expect(inCluster.snapshot.service(named: "grpc-api")?.upstreamProtocol == .h2c)
        #expect(inCluster.snapshot.listeners.map(\.address) == ["0.0.0.0", "0.0.0.0"])
        #expect(inCluster.snapshot.listeners.map(\.port) == [8080, 8443])
        #expect(inCluster.snapshot.dns == nil)
        #expect(inCluster.snapshot.stateDirectory == "/var/lib/gantry")
        #expect(text.contains("redis: \"gantry-redis:6379\"") || text.contains("redis: gantry-redis:6379"))
        #expect(inCluster.snapshot.routeNames == ["orders", "canary", "search"])
        // Outside cluster mode the same file is refused: its services have no endpoints.
        guard case .failure = ConfigLoader.load(yaml: local, file: "configmap") else {
            Issue.record("a file without endpoints or pods loaded outside --kubernetes")
            return
        }

        #expect(output.warnings.contains { $0.hasPrefix("loadBalancer.listeners[0].port:") })
        #expect(output.warnings.contains { $0.hasPrefix("accessLog.path:") })
        #expect(output.warnings.contains { $0.hasPrefix("services[1].pods.image") } == false)  // gantry's image holds gantry
        #expect(output.warnings.contains { $0.hasPrefix("services[0].pods.image") } == false)  // it has its own image
    }

    @Test func routesForAnotherControllerSayWhatTheyCannotCarry() throws {
        let gatewayAPI = try Self.export(Self.rich, routes: .gatewayAPI)
        let routes = try Self.parsed(gatewayAPI).filter { $0["kind"] as? String == "HTTPRoute" }
        #expect(routes.count == 3)
        let orders = try Self.find(routes, "HTTPRoute", "orders")
        #expect(Self.value(orders, "spec.hostnames.0") as? String == "shop.example")
        #expect((Self.value(orders, "spec.rules.0.matches") as? [Any])?.count == 2)  // one per method
        #expect(Self.value(orders, "spec.rules.0.matches.1.method") as? String == "POST")
        #expect(Self.value(orders, "spec.rules.0.matches.0.headers.0.value") as? String == "2")
        #expect(Self.value(orders, "spec.rules.0.timeouts.request") as? String == "5s")
        let canary = try Self.find(routes, "HTTPRoute", "canary")
        #expect(Self.value(canary, "spec.rules.0.matches.0.path.type") as? String == "Exact")
        #expect(Self.value(canary, "spec.rules.0.backendRefs.1.weight") as? Int == 5)
        #expect(Self.value(canary, "spec.rules.0.filters.0.requestMirror.percent") as? Int == 10)
        let search = try Self.find(routes, "HTTPRoute", "search")
        #expect(Self.value(search, "spec.rules.0.matches.0.queryParams.0.type") as? String == "RegularExpression")
        #expect(gatewayAPI.warnings.contains("gateway.routes[0].policies: shared-limit run in gantry only: the other controller must enforce them itself"))

        let ingress = try Self.export(Self.rich, routes: .ingress)
        let object = try Self.find(try Self.parsed(ingress), "Ingress", "gantry")
        let rules = try #require(Self.value(object, "spec.rules") as? [[String: Any]])
        #expect(rules.map { $0["host"] as? String } == ["shop.example", "*.shop.example", nil])
        #expect(Self.value(rules[1], "http.paths.0.backend.service.name") as? String == "orders")  // the heaviest of the split
        for expected in ["gateway.routes[0].methods", "gateway.routes[0].headers", "gateway.routes[1].backends", "gateway.routes[1].mirror", "gateway.routes[2].queryParams"] {
            #expect(ingress.warnings.contains { $0.hasPrefix(expected + ":") }, "\(expected)")
        }
    }

    @Test func theSameFileGivesTheSameBytes() throws {
        let first = try Self.export(Self.rich, routes: .gatewayAPI).files.map(\.yaml)
        let second = try Self.export(Self.rich, routes: .gatewayAPI).files.map(\.yaml)
        #expect(first == second)
        #expect(first.joined().contains("# restartBackoff has no field here"))
    }

    @Test func stringsThatYAMLWouldReadAsSomethingElseAreQuoted() throws {
        for text in ["yes", "No", "null", "~", "0755", "1:30", "-x", "", "a: b", "#x", "*.example.com", "x\ny\n", "trailing:", "{x}", "\"q\"", "tab\there"] {
            let document = ManifestDocument(["value": .string(text)])
            let parsed = try #require(try Yams.load(yaml: document.yaml) as? [String: Any])
            #expect(parsed["value"] as? String == text, "\(text.debugDescription) written as \(document.yaml.debugDescription)")
        }
    }

    // MARK: The schemas

    /// The repository, from this file's place in it (through tsan/'s link to the tests too).
    static let root = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// kubernetes-validate (PyPI), installed by .ci/run into .build/kubernetes-validate.
    static var validator: String? {
        if let explicit = ProcessInfo.processInfo.environment["KUBERNETES_VALIDATE"] { return explicit }
        let installed = root.appendingPathComponent(".build/kubernetes-validate/bin/kubernetes-validate").path
        return FileManager.default.isExecutableFile(atPath: installed) ? installed : nil
    }

    static let kubernetesVersions = ["1.35.0", "1.36.0", "1.37.0"]

    @Test func everyExportedObjectPassesTheKubernetesSchemas() async throws {
        let validator = try #require(Self.validator, "install kubernetes-validate: bash .ci/run does (python3 -m venv .build/kubernetes-validate)")
        let directory = GantryProcess.scratchDirectory()
        let examples = Self.root.appendingPathComponent("examples/echo.yaml")
        var files: [String] = []
        for (name, text) in [
            ("example", BuiltInExample.yaml), ("rich", Self.rich), ("echo", try String(contentsOf: examples, encoding: .utf8)),
        ] {
            for routes in [KubernetesExport.RouteObjects.ingress, .gatewayAPI] {
                for file in try Self.export(text, named: name, routes: routes).files {
                    let path = directory.appendingPathComponent("\(name)-\(routes.rawValue)-\(file.name)").path
                    try file.yaml.write(toFile: path, atomically: true, encoding: .utf8)
                    files.append(path)
                }
            }
        }
        // HTTPRoute is a CRD, not among the schemas: the tool warns and skips it (checked above).
        for version in Self.kubernetesVersions {
            let result = try await run(validator, ["--strict", "--no-warn", "-k", version] + files)
            #expect(result.status == 0, "Kubernetes \(version): \(result.output)\(result.error)")
        }
        // And it does reject what is wrong: a Deployment with a string for replicas, a misspelt field.
        let broken = directory.appendingPathComponent("broken.yaml").path
        let deployment = try Self.export(Self.rich, named: "rich").files.first { $0.name == "20-orders.yaml" }!.yaml
        try deployment.replacingOccurrences(of: "replicas: 3", with: "replicas: three").write(toFile: broken, atomically: true, encoding: .utf8)
        let rejected = try await run(validator, ["--strict", "--no-warn", "-k", Self.kubernetesVersions.last!, broken])
        #expect(rejected.status != 0)
        try deployment.replacingOccurrences(of: "terminationGracePeriodSeconds", with: "terminationGraceSeconds").write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(try await run(validator, ["--strict", "--no-warn", "-k", Self.kubernetesVersions.last!, broken]).status != 0)
    }
}
