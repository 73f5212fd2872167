import GantryCore
import Testing

@testable import GantryConfig

/// TLS listeners, redirects, DNS zones and health checks: what compiles, and every error with
/// its line and path.
@Suite struct EdgeSpecTests {
    private func load(_ yaml: String) -> Result<LoadedConfig, ConfigError> {
        ConfigLoader.load(yaml: yaml, file: "gantry.yaml", coreCount: 2)
    }

    private func issues(_ yaml: String) -> [String] {
        switch load(yaml) {
        case .success: return []
        case .failure(let error): return error.issues.map(\.description)
        }
    }

    static let services = """
        gateway: {routes: [{path: /, service: app}]}
        services: [{name: app, endpoints: [127.0.0.1:9001], healthCheck: {path: /healthz, matcher: "200-299,304"}}]
        """

    @Test func tlsListenersRedirectsAndDNSCompile() throws {
        let yaml = """
            loadBalancer:
              listeners:
                - {name: https, port: 8443, tls: {selfSigned: [example.com, "*.example.com"], hsts: {maxAge: 1h, includeSubDomains: true}}}
                - {name: http, port: 8080, redirectTo: https}
                - {name: h2c, port: 8081, http2: true}
            dns:
              zones:
                - origin: example.com
                  records:
                    - {type: A, listener: https}
                    - {name: www, type: CNAME, target: example.com}
                    - {name: mail.example.com, type: A, address: 127.0.0.2}
                    - {type: MX, target: mail}
                    - {name: _https._tcp, type: SRV, port: 8443, target: example.com}
            \(Self.services)
            """
        let snapshot = try load(yaml).get().snapshot
        let https = snapshot.listeners[0]
        #expect(https.scheme == "https" && https.http2 && https.tls?.selfSigned == ["example.com", "*.example.com"])
        #expect(https.tls?.hsts == "max-age=3600; includeSubDomains")
        #expect(snapshot.listeners[1].redirectToPort == 8443 && !snapshot.listeners[1].http2)
        #expect(snapshot.listeners[2].http2 && snapshot.listeners[2].tls == nil)

        let dns = try #require(snapshot.dns)
        let clusterLocal = try DNSName("cluster.local")
        #expect(dns.address == "127.0.0.1" && dns.port == 5353 && dns.clusterDomain == clusterLocal)
        let records = dns.zones[0].records.map(\.description)
        #expect(records.contains { $0.hasPrefix("example.com.") && $0.hasSuffix("A 127.0.0.1") })
        #expect(records.contains { $0.hasPrefix("www.example.com.") && $0.contains("CNAME example.com.") })
        #expect(records.contains { $0.contains("MX 10 mail.example.com.") })
        #expect(records.contains { $0.hasPrefix("_https._tcp.example.com.") && $0.contains("SRV 10 100 8443 example.com.") })

        let check = try #require(snapshot.services[0].healthCheck)
        #expect(check.path == "/healthz" && check.interval == .seconds(10) && check.healthyThreshold == 3 && check.unhealthyThreshold == 2)
        #expect(check.matcher.matches(204) && check.matcher.matches(304) && !check.matcher.matches(301) && !check.matcher.matches(503))
    }

    @Test func edgeMistakesAreReportedWithLineAndPath() {
        let yaml = """
            loadBalancer:
              listeners:
                - {name: https, port: 8443, tls: {certificates: [{certificate: /nonexistent/cert.pem, key: /nonexistent/key.pem}]}}
                - {name: bare, port: 8444, tls: {}}
                - {name: http, port: 8080, redirectTo: htps}
                - {name: loop, port: 8081, redirectTo: loop}
            dns:
              listen: localhost
              zones:
                - origin: example.com
                  records:
                    - {type: A, address: 300.1.1.1}
                    - {type: AAA, address: "::1"}
                    - {type: A, listener: nope}
                    - {type: SRV, target: example.com}
            gateway: {routes: [{path: /, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:9001], healthCheck: {interval: 1s, timeout: 2s, matcher: "2xx", unhealthyThreshold: 0}}]
            """
        let found = issues(yaml)
        let expected = [
            "gantry.yaml:3:68: loadBalancer.listeners[0].tls.certificates[0].certificate: cannot read /nonexistent/cert.pem",
            "gantry.yaml:3:96: loadBalancer.listeners[0].tls.certificates[0].key: cannot read /nonexistent/key.pem",
            "gantry.yaml:4:37: loadBalancer.listeners[1].tls: needs certificates:",
            "gantry.yaml:5:44: loadBalancer.listeners[2].redirectTo: unknown listener \"htps\" (did you mean \"https\"?)",
            "gantry.yaml:6:44: loadBalancer.listeners[3].redirectTo: listener \"loop\" has no tls",
            "gantry.yaml:8:11: dns.listen: \"localhost\" is not address:port",
            "gantry.yaml:12:30: dns.zones[0].records[0].address: \"300.1.1.1\" is not an IPv4 address",
            "gantry.yaml:13:18: dns.zones[0].records[1].type: unknown record type \"AAA\"",
            "gantry.yaml:14:31: dns.zones[0].records[2].listener: unknown listener \"nope\"",
            "gantry.yaml:15:11: dns.zones[0].records[3].port: an SRV record needs port",
            "gantry.yaml:17:90: services[0].healthCheck.timeout: must be less than the interval",
            "gantry.yaml:17:130: services[0].healthCheck.unhealthyThreshold: must be between 1 and 10",
            "gantry.yaml:17:103: services[0].healthCheck.matcher: \"2xx\" is not a list of status codes",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "\(found.joined(separator: "\n"))")
        }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }

    @Test func otlpExportCompilesWithDefaultsAndItsMistakesAreReported() throws {
        let listener = "loadBalancer: {listeners: [{port: 8080}]}\n"
        let defaults = try load("tracing: {otlp: {}}\n" + listener + Self.services).get().snapshot.otlp
        #expect(defaults?.endpoint == "http://127.0.0.1:4318/v1/traces" && defaults?.protocol == .httpProtobuf)
        #expect(defaults?.sampling == 1 && defaults?.serviceName == "gantry" && defaults?.exportInterval == .seconds(5))
        #expect(try load(listener + Self.services).get().snapshot.otlp == nil, "off unless configured")

        let yaml = """
            tracing:
              otlp:
                endpoint: collector:4318
                protocol: httpJsn
                sampling: 1.5
                headers: {"bad name": x, Authorization: Bearer t}
                exportInterval: 0s
            \(listener)\(Self.services)
            """
        let found = issues(yaml)
        let expected = [
            "gantry.yaml:3:15: tracing.otlp.endpoint: \"collector:4318\" is not an http or https URL",
            "gantry.yaml:4:15: tracing.otlp.protocol: unknown value \"httpJsn\": expected one of httpProtobuf, httpJSON (did you mean \"httpJSON\"?)",
            "gantry.yaml:5:15: tracing.otlp.sampling: must be between 0 and 1",
            "gantry.yaml:6:27: tracing.otlp.headers.bad name: is not a valid header name",
            "gantry.yaml:7:21: tracing.otlp.exportInterval: must be longer than zero",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "\(found.joined(separator: "\n"))")
        }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }
}
