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

    /// The SOA's fields are the file's to set (RFC 1035 §3.3.13), MNAME one of the zone's NS
    /// names; NS and MX never point at a CNAME (RFC 2181 §10.3); TTLs go up to 2^31−1 seconds
    /// (RFC 2181 §8).
    @Test func soaFieldsNSTargetsAndTTLsFollowTheRFCs() throws {
        let good = """
            loadBalancer: {listeners: [{port: 8080}]}
            dns:
              zones:
                - origin: example.com
                  soa: {mname: ns2, rname: dns-admin@example.com, serial: 2026120601, refresh: 2h, retry: 15m, expire: 336h, minimum: 5m}
                  records:
                    - {type: NS, target: ns1}
                    - {type: NS, target: ns2}
                    - {name: ns1, type: A, address: 192.0.2.1}
                    - {name: ns2, type: A, address: 192.0.2.2, ttl: 2147483647s}
            \(Self.services)
            """
        let zone = try #require(try load(good).get().snapshot.dns?.zones.first)
        #expect(zone.soa.mname == (try DNSName("ns2.example.com")))
        #expect(zone.soa.rname == (try DNSName("dns-admin.example.com")))
        #expect(zone.soa.serial == 2026120601 && zone.soa.refresh == 7200 && zone.soa.retry == 900 && zone.soa.expire == 1_209_600 && zone.soa.minimum == 300)
        #expect(zone.records.contains { $0.ttl == 2_147_483_647 })
        // Without soa: the first NS is the primary, and the old defaults hold.
        let plain = try #require(try load(good.replacingOccurrences(of: "      soa: {mname: ns2, rname: dns-admin@example.com, serial: 2026120601, refresh: 2h, retry: 15m, expire: 336h, minimum: 5m}\n", with: "")).get().snapshot.dns?.zones.first)
        #expect(plain.soa.mname == (try DNSName("ns1.example.com")) && plain.soa.refresh == 3600 && plain.soa.retry == 600 && plain.soa.expire == 86400 && plain.soa.minimum == 30)

        let bad = """
            loadBalancer: {listeners: [{port: 8080}]}
            dns:
              zones:
                - origin: example.com
                  soa: {mname: ns9}
                  records:
                    - {type: NS, target: ns1}
                    - {type: MX, target: alias}
                    - {name: ns1, type: A, address: 192.0.2.1, ttl: 2147483648s}
                    - {name: alias, type: CNAME, target: ns1}
                    - {name: sub, type: NS, target: alias}
            \(Self.services)
            """
        let found = issues(bad)
        let expected = [
            "gantry.yaml:5:20: dns.zones[0].soa.mname: ns9.example.com. is not one of the zone's NS names (ns1.example.com.)",
            "gantry.yaml:9:57: dns.zones[0].records[2].ttl: must be at most 2147483647s, about 68 years (RFC 2181 §8)",
            "gantry.yaml:8:30: dns.zones[0].records[1].target: alias.example.com. is a CNAME; an MX record must point at a name with A or AAAA records (RFC 2181 §10.3)",
            "gantry.yaml:11:41: dns.zones[0].records[4].target: alias.example.com. is a CNAME; an NS record must point at a name with A or AAAA records (RFC 2181 §10.3)",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "\(found.joined(separator: "\n"))")
        }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }

    /// Backends, stickiness and a mirror compile to the route; their mistakes are named.
    @Test func splitsAndMirrorsCompileAndTheirMistakesAreNamed() throws {
        let services = "services: [{name: v1, endpoints: [127.0.0.1:9001]}, {name: v2, endpoints: [127.0.0.1:9002]}]\n"
        let good = try load(
            """
            loadBalancer: {listeners: [{port: 8080}]}
            gateway:
              routes: [{path: /, backends: [{service: v1, weight: 9}, {service: v2}], sticky: {cookie: sid}, mirror: {service: v2, percent: 12.5}}]
            \(services)
            """
        ).get().snapshot.routes.rules[0]
        #expect(good.split?.backends.map(\.weight) == [9, 1] && good.split?.sticky == .cookie("sid"))
        #expect(good.mirror == RouteMirror(service: 1, percent: 12.5))
        let found = issues(
            """
            loadBalancer: {listeners: [{port: 8080}]}
            gateway:
              routes:
                - {path: /a, backends: [{service: v1, weight: 0}], mirror: {service: v3, percent: 150}}
                - {path: /b, service: v1, backends: [{service: v2}]}
                - {path: /c, service: v1, sticky: {header: X-User}}
            \(services)
            """)
        let expected = [
            "gantry.yaml:4:28: gateway.routes[0].backends: every weight is 0",
            "gantry.yaml:4:87: gateway.routes[0].mirror.percent: must be between 0 and 100",
            "gantry.yaml:4:74: gateway.routes[0].mirror.service: unknown service \"v3\"",
            "gantry.yaml:5:41: gateway.routes[1].backends: set either service or backends, not both",
            "gantry.yaml:6:39: gateway.routes[2].sticky: sticky needs backends",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "\(found.joined(separator: "\n"))")
        }
        #expect(found.count == expected.count, "\(found.joined(separator: "\n"))")
    }

    /// `protocol: h2c` and `h2`, streams per connection, gRPC health checks and probes.
    @Test func http2ServicesAndGRPCHealthCompile() throws {
        let yaml = """
            loadBalancer: {listeners: [{name: http, port: 8080}]}
            gateway: {routes: [{path: /a, service: plain}, {path: /b, service: secure}, {path: /c, service: pods}]}
            services:
              - {name: plain, endpoints: [127.0.0.1:9001], protocol: h2c, connectionPool: {maxConcurrentStreams: 8},
                 healthCheck: {grpc: {service: echo}}}
              - {name: secure, endpoints: [127.0.0.1:9002], protocol: h2, tls: {serverName: api.internal}}
              - name: pods
                pods: {command: [server], port: 50051, readinessProbe: {grpc: {service: echo}}, livenessProbe: {grpc: {port: 50052}}}
            """
        let services = try load(yaml).get().snapshot.services
        #expect(services[0].upstreamProtocol == .h2c && services[0].maxConcurrentStreams == 8 && services[0].tls == nil)
        #expect(services[0].healthCheck?.grpcService == "echo")
        #expect(services[1].upstreamProtocol == .h2 && services[1].tls?.http2 == true && services[1].maxConcurrentStreams == 100)
        #expect(services[2].upstreamProtocol == .http1)
        #expect(services[2].pods?.readinessProbe?.action == .grpc(port: 50051, service: "echo"))
        #expect(services[2].pods?.livenessProbe?.action == .grpc(port: 50052, service: ""))
    }

    @Test func http2MistakesAreExplained() {
        let problems = issues(
            """
            gateway: {routes: [{path: /, service: a}]}
            services:
              - {name: a, endpoints: [127.0.0.1:9001], protocol: http2}
              - {name: b, endpoints: [127.0.0.1:9001], protocol: h2}
              - {name: c, endpoints: [127.0.0.1:9001], protocol: h2c, tls: {}}
              - {name: d, endpoints: [127.0.0.1:9001], connectionPool: {maxConcurrentStreams: 4}}
              - {name: e, endpoints: [127.0.0.1:9001], protocol: h2c, healthCheck: {grpc: {}, path: /healthz}}
              - name: f
                pods: {command: [x], readinessProbe: {grpc: {}, tcpSocket: {}}}
            """)
        #expect(problems.contains { $0.contains("services[0].protocol") && $0.contains("write http1, h2c") }, "\(problems)")
        #expect(problems.contains { $0.contains("services[1].protocol") && $0.contains("add tls: {}") }, "\(problems)")
        #expect(problems.contains { $0.contains("services[2].protocol") && $0.contains("write protocol: h2") }, "\(problems)")
        #expect(problems.contains { $0.contains("services[3].connectionPool.maxConcurrentStreams") && $0.contains("HTTP/2") }, "\(problems)")
        #expect(problems.contains { $0.contains("services[4].healthCheck.path") && $0.contains("SERVING") }, "\(problems)")
        #expect(problems.contains { $0.contains("services[5].pods.readinessProbe") && $0.contains("grpc") }, "\(problems)")
        #expect(problems.allSatisfy { $0.contains("gantry.yaml:") }, "\(problems)")
    }
}
