import GantryCore
import Testing

@testable import GantryConfig

@Suite struct PodSpecTests {
    private func load(_ services: String) -> Result<LoadedConfig, ConfigError> {
        let yaml = """
            loadBalancer:
              listeners:
                - {name: http, port: 8080}
            gateway:
              routes:
                - {path: /app, service: app-service}
            services:
            \(services)
            """
        return ConfigLoader.load(yaml: yaml, file: "/srv/site/gantry.yaml", coreCount: 2)
    }

    @Test func podsCompileWithKubernetesDefaults() throws {
        let loaded = try load(
            """
              - name: app-service
                pods:
                  command: [gantry, example, echo]
                  env: [{name: MODE, value: demo}]
                  resources: {requests: {cpu: 250m, memory: 64MiB}}
                  readinessProbe: {httpGet: {path: /healthz}}
                  livenessProbe: {tcpSocket: {}, periodSeconds: 5}
                  startupProbe: {exec: {command: [true]}, failureThreshold: 30}
            """
        ).get()
        let service = loaded.snapshot.services[0]
        let pods = try #require(service.pods)
        #expect(pods.replicas == 1)
        #expect(pods.port == 8080)
        #expect(pods.restartPolicy == .always)
        #expect(pods.terminationGracePeriod == .seconds(30))
        #expect(pods.cpuRequestMillicores == 250)
        #expect(pods.memoryRequestBytes == 64 << 20)
        #expect(pods.env == [PodTemplate.EnvVar(name: "MODE", value: "demo")])
        #expect(pods.readinessProbe == Probe(action: .httpGet(path: "/healthz", port: 8080, headers: [])))
        #expect(pods.livenessProbe?.action == .tcpSocket(port: 8080))
        #expect(pods.livenessProbe?.period == .seconds(5))
        #expect(pods.livenessProbe?.timeout == .seconds(1))
        #expect(pods.livenessProbe?.failureThreshold == 3)
        #expect(pods.startupProbe?.failureThreshold == 30)
        #expect(pods.restartBackoff == RestartBackoff())
        #expect(service.clusterIP == .automatic(port: 8080))
        #expect(loaded.snapshot.stateDirectory == "/srv/site/.gantry")
        #expect(loaded.snapshot.serviceRoutes[0].service == 0)
        #expect(loaded.snapshot.routeSettings.count == 2)
    }

    @Test func podProblemsAreReportedWithTheirPaths() {
        let result = load(
            """
              - name: app-service
                endpoints: [127.0.0.1:9001]
                clusterIP: 10.0.0.1
                pods:
                  command: []
                  replicas: -1
                  restartPolicy: Sometimes
                  env: [{name: 1BAD, value: x}]
                  readinessProbe: {httpGet: {path: healthz}, tcpSocket: {port: 80}}
                  livenessProbe: {tcpSocket: {port: 70000}, successThreshold: 2, periodSeconds: 0}
                  readnessProbe: {exec: {command: [true]}}
            """)
        guard case .failure(let error) = result else {
            Issue.record("accepted a bad pod spec")
            return
        }
        let found = error.issues.map(\.description)
        let expected = [
            "services[0].pods.restartPolicy: unknown value \"Sometimes\": expected one of Always, OnFailure, Never",
            "services[0].pods.readnessProbe: unknown key \"readnessProbe\" (did you mean \"readinessProbe\"?)",
            "services[0].pods.command: missing required key \"command\"",
            "services[0].pods.env[0].name: needs a name",
            "services[0].pods.replicas: must be between 0 and 1000",
            "services[0].pods.readinessProbe: set exactly one of httpGet, tcpSocket, grpc or exec",
            "services[0].pods.livenessProbe.tcpSocket.port: must be between 1 and 65535",
            "services[0].pods.livenessProbe.periodSeconds: must be at least 1",
            "services[0].pods.livenessProbe.successThreshold: must be 1 for liveness probes",
            "services[0].endpoints: a service has either endpoints or pods, not both",
            "services[0].clusterIP: \"10.0.0.1\" is not a loopback IPv4 address",
        ]
        for fragment in expected {
            #expect(found.contains { $0.contains(fragment) }, "missing: \(fragment)\nin: \(found.joined(separator: "\n"))")
        }
        #expect(found.allSatisfy { $0.hasPrefix("/srv/site/gantry.yaml:") })
    }

    /// Kubernetes' `Object` and `External` metrics: a route's or a service's requests per second,
    /// and a Prometheus series, each with a `value` or an `averageValue` target.
    @Test func objectAndExternalMetricsCompileAndTheirMistakesAreNamed() throws {
        let service = """
              - name: app-service
                pods: {command: [gantry, example, echo], replicas: 2}
                autoscaling:
                  maxReplicas: 8
                  metrics:
            """
        let loaded = try load(
            service + """

                    - {object: {route: /app, value: 200}}
                    - {object: {service: app-service, metric: requestsPerSecond, averageValue: 50}}
                    - {external: {url: "http://127.0.0.1:9100/metrics", series: 'jobs{queue="email"}', averageValue: 30}}
            """
        ).get()
        let autoscaling = try #require(loaded.snapshot.services[0].autoscaling)
        #expect(
            autoscaling.targets == [
                .object(metric: #"requestsPerSecond{route="/app"}"#, target: .value(200)),
                .object(metric: #"requestsPerSecond{service="app-service"}"#, target: .averageValue(50)),
                .external(metric: #"jobs{queue="email"}"#, target: .averageValue(30)),
            ])
        #expect(autoscaling.sources[#"requestsPerSecond{route="/app"}"#] == .routeRequests("/app"))
        #expect(
            autoscaling.sources[#"jobs{queue="email"}"#]
                == .prometheus(host: "127.0.0.1", port: 9100, path: "/metrics", series: PrometheusSeries(name: "jobs", labels: ["queue": "email"])))

        guard case .failure(let unknown) = load(service + "\n        - {object: {route: /ap, value: 200}}") else {
            Issue.record("an unknown route was accepted")
            return
        }
        #expect(unknown.description.contains(#"unknown route "/ap" (did you mean "/app"?)"#), "\(unknown)")
        guard case .failure(let error) = load(
            service + """

                    - {object: {service: app-service, value: 1, averageValue: 2}}
                    - {external: {url: "ftp://x/metrics", series: jobs, value: 1}}
                    - {external: {url: "http://x/metrics", series: 'jobs{queue=email}', value: 1}}
            """)
        else {
            Issue.record("the mistakes were accepted")
            return
        }
        let text = error.description
        #expect(text.contains("set one of value (the total) and averageValue (per replica), above 0"), "\(text)")
        #expect(text.contains("needs the http:// URL of a Prometheus text endpoint"), "\(text)")
        #expect(text.contains("needs a series as Prometheus writes it"), "\(text)")
    }
}
