import Foundation
import GantryConfig
import GantryTestSupport
import GantryTLS
import NIOPosix
import Testing

@testable import GantryProxy

/// TLS termination, SNI, certificate reload, HTTPS redirects, HSTS and HTTP/2, driven by curl
/// and Python's ssl module against real sockets.
extension LiveProxyTests {
    /// A free loopback port for listeners that others refer to by port (a redirect's target).
    static func freePort() async throws -> Int {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let port = try await closedPort(group: group)
        try await group.shutdownGracefully()
        return port
    }

    static func tlsYAML(state: String, httpsPort: Int, extra: String = "", http2Plain: Bool = false) -> ([Int]) -> String {
        { ports in
            """
            runtime: {stateDirectory: \(state)}
            accessLog: {enabled: false}
            loadBalancer:
              listeners:
                - name: https
                  port: \(httpsPort)
                  tls:
                    selfSigned: [example.com, "*.example.com"]
                    hsts: {maxAge: 1h, includeSubDomains: true}
            \(extra)
                - {name: http, port: 0, redirectTo: https}
                - {name: plain, port: 0, http2: \(http2Plain)}
            gateway: {routes: [{path: /, service: app}]}
            services:
              - name: app
                endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
            """
        }
    }

    static func scratch() -> String {
        GantryProcess.scratchDirectory().path
    }

    /// curl against a listener on 127.0.0.1, with `host` resolved there.
    static func curl(_ arguments: [String], host: String = "example.com", port: Int, path: String = "/hello", scheme: String = "https")
        async throws -> (status: Int32, output: String, error: String)
    {
        try await run(
            "curl",
            ["-sS", "--max-time", "10", "--resolve", "\(host):\(port):127.0.0.1"] + arguments + ["\(scheme)://\(host):\(port)\(path)"])
    }

    @Test func servesHTTPSWithTheLocalCAOverBothProtocolsAndOnlyModernTLS() async throws {
        let state = Self.scratch()
        let port = try await Self.freePort()
        try await withProxy(yaml: Self.tlsYAML(state: state, httpsPort: port)) { harness in
            let ca = LocalCertificateAuthority(stateDirectory: state).certificatePath
            let format = ["-o", "/dev/null", "-w", "%{http_code} %{http_version}"]
            #expect(try await Self.curl(["--cacert", ca, "--http1.1"] + format, port: port).output == "200 1.1")
            #expect(try await Self.curl(["--cacert", ca, "--http2"] + format, port: port).output == "200 2")
            // The wildcard name of the same certificate, and TLS 1.3.
            #expect(try await Self.curl(["--cacert", ca, "--tlsv1.3"] + format, host: "api.example.com", port: port).output == "200 2")
            // Not trusted without the CA; TLS 1.1 and older refused.
            #expect(try await Self.curl(format, port: port).status != 0)
            #expect(try await Self.curl(["--cacert", ca, "--tls-max", "1.1"] + format, port: port).status != 0)

            // What the upstream saw: https, and the response carries HSTS.
            let echo = try await Self.curl(["--cacert", ca, "-i"], port: port)
            #expect(echo.output.contains("strict-transport-security: max-age=3600; includeSubDomains"))
            #expect(echo.output.contains(#"["x-forwarded-proto","https"]"#))

            // Plain HTTP to the TLS port gets a 400 it can read, as nginx answers, and the
            // connection closes; it never reaches the upstream.
            let before = harness.upstreamRequestCount
            let plain = try harness.connect(port: port)
            try plain.send(request(["GET / HTTP/1.1", "Host: example.com"]))
            let refused = try await plain.readResponse()
            #expect(refused.status == 400)
            #expect(refused.header("connection") == "close")
            #expect(try refused.json()["message"] as? String == "a plain HTTP request was sent to an HTTPS port: use https://…:\(port)")
            #expect(await plain.waitForClose())
            #expect(harness.upstreamRequestCount == before)
            // Bytes that are neither TLS nor HTTP are a failed handshake, closed and counted.
            let garbage = try harness.connect(port: port)
            try garbage.send([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
            #expect(await garbage.waitForClose())
            #expect(await eventually { await harness.plane.counters()[.tlsHandshakeFailures] >= 1 })
        }
    }

    @Test func choosesTheCertificateBySNIAndPicksUpReplacedFiles() async throws {
        let state = Self.scratch()
        // A second certificate from a different CA, for other.test: only SNI can choose it.
        let otherCA = LocalCertificateAuthority(stateDirectory: Self.scratch())
        let issued = try otherCA.leaf(for: ["other.test"])
        let certificate = state + "/other.pem"
        let key = state + "/other-key.pem"
        try FileManager.default.copyItem(atPath: issued.certificate, toPath: certificate)
        try FileManager.default.copyItem(atPath: issued.key, toPath: key)
        let extra = "        certificates: [{certificate: \(certificate), key: \(key)}]"
        let port = try await Self.freePort()
        try await withProxy(yaml: Self.tlsYAML(state: state, httpsPort: port, extra: extra)) { harness in
            let localCA = LocalCertificateAuthority(stateDirectory: state).certificatePath
            let format = ["-o", "/dev/null", "-w", "%{http_code}"]
            #expect(try await Self.curl(["--cacert", otherCA.certificatePath] + format, host: "other.test", port: port).output == "200")
            #expect(try await Self.curl(["--cacert", localCA] + format, host: "example.com", port: port).output == "200")
            // No SNI match: the default (first) certificate, which does not name other.example.org.
            #expect(try await Self.curl(["--cacert", otherCA.certificatePath] + format, host: "other.example.org", port: port).status != 0)

            // A connection opened with the old certificate keeps working across the reload.
            let marker = state + "/go"
            let client = ChildProcess()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            client.arguments = ["python3", "-c", Self.twoRequestsOnOneConnection, String(port), otherCA.certificatePath, marker]
            let output = Pipe()
            client.standardOutput = output
            try client.run()
            // The first answer comes with the old certificate, before the files change.
            var firstLine = Data()
            while !firstLine.contains(UInt8(ascii: "\n")) {
                let more = output.fileHandleForReading.availableData
                if more.isEmpty { break }
                firstLine += more
            }

            // Replace the files with a certificate from a third CA.
            let thirdCA = LocalCertificateAuthority(stateDirectory: Self.scratch())
            let replacement = try thirdCA.leaf(for: ["other.test"])
            try FileManager.default.removeItem(atPath: certificate)
            try FileManager.default.removeItem(atPath: key)
            try FileManager.default.copyItem(atPath: replacement.key, toPath: key)
            try FileManager.default.copyItem(atPath: replacement.certificate, toPath: certificate)
            #expect(
                await eventually(timeout: .seconds(10)) {
                    (try? await Self.curl(["--cacert", thirdCA.certificatePath] + format, host: "other.test", port: port).output) == "200"
                })
            _ = FileManager.default.createFile(atPath: marker, contents: Data())
            client.waitForEnd()
            let lines = String(decoding: firstLine + output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(lines.split(separator: "\n") == ["200", "200"])
        }
    }

    /// Two requests on one TLS connection, the second once `marker` exists.
    static let twoRequestsOnOneConnection = """
        import http.client, os, ssl, sys, time
        port, ca, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        context = ssl.create_default_context(cafile=ca)
        connection = http.client.HTTPSConnection("other.test", port, context=context, timeout=10)
        connection.sock = None
        import socket
        raw = socket.create_connection(("127.0.0.1", port))
        connection.sock = context.wrap_socket(raw, server_hostname="other.test")
        for attempt in range(2):
            if attempt == 1:
                deadline = time.time() + 20
                while not os.path.exists(marker) and time.time() < deadline:
                    time.sleep(0.05)
            connection.request("GET", "/keep")
            response = connection.getresponse()
            response.read()
            print(response.status, flush=True)
        """

    @Test func redirectsPlainHTTPToHTTPSKeepingPathAndQuery() async throws {
        let state = Self.scratch()
        let port = try await Self.freePort()
        try await withProxy(yaml: Self.tlsYAML(state: state, httpsPort: port)) { harness in
            let response = try await harness.get("/app/orders?page=2&sort=asc", host: "example.com:\(harness.ports[1])", port: harness.ports[1])
            #expect(response.status == 308)
            #expect(response.header("location") == "https://example.com:\(port)/app/orders?page=2&sort=asc")
            #expect(response.header("strict-transport-security") == nil)  // never over plain HTTP (RFC 6797 §7.2)
            #expect(harness.upstreamRequestCount == 0)
            #expect(await harness.plane.counters()[.redirects] == 1)
        }
    }

    @Test func acceptsHTTP2WithPriorKnowledgeAndStreamsBodiesBothWays() async throws {
        let state = Self.scratch()
        let port = try await Self.freePort()
        try await withProxy(yaml: Self.tlsYAML(state: state, httpsPort: port, http2Plain: true)) { harness in
            let plain = harness.ports[2]
            let format = ["-o", "/dev/null", "-w", "%{http_code} %{http_version}"]
            #expect(try await Self.curl(["--http2-prior-knowledge"] + format, port: plain, scheme: "http").output == "200 2")
            #expect(try await Self.curl(format, port: plain, scheme: "http").output == "200 1.1")

            // A 2 MiB upload without content-length over HTTP/2 (sent upstream chunked), echoed.
            let file = state + "/upload.bin"
            _ = FileManager.default.createFile(atPath: file, contents: Data(repeating: 0x61, count: 2 << 20))
            let ca = LocalCertificateAuthority(stateDirectory: state).certificatePath
            // Read from a pipe, the size is unknown to curl: no content-length on the stream.
            let upload = try await run(
                "sh",
                [
                    "-c",
                    "cat \(file) | curl -sS --max-time 20 --resolve example.com:\(port):127.0.0.1 --cacert \(ca) --http2 -T - -X POST "
                        + "-o \(state)/echo.json -w '%{http_code} %{http_version}' https://example.com:\(port)/upload",
                ])
            #expect(upload.output == "200 2")
            let echoed = try Data(contentsOf: URL(fileURLWithPath: state + "/echo.json"))
            let json = try JSONSerialization.jsonObject(with: echoed) as? [String: Any]
            #expect(json?["bodyBytes"] as? Int == 2 << 20)
            let headers = (json?["headers"] as? [[String]]) ?? []
            #expect(headers.contains(["transfer-encoding", "chunked"]) && !headers.contains { $0.first == "content-length" }, "\(headers)")
            #expect(await harness.plane.counters()[.http2Connections] >= 2)
        }
    }
}

extension LiveProxyTests {
    /// Connection limits apply at accept, before any TLS handshake work.
    /// A TLS listener that takes one connection per client address.
    static func oneConnectionPerClientYAML(state: String) -> ([Int]) -> String {
        { ports in
            """
            runtime: {stateDirectory: \(state)}
            accessLog: {enabled: false}
            loadBalancer:
              listeners: [{name: https, port: 0, tls: {selfSigned: [example.com]}}]
              limits: {maxConnectionsPerClient: 1}
            gateway: {routes: [{path: /, service: app}]}
            services: [{name: app, endpoints: [127.0.0.1:\(ports[0])]}]
            """
        }
    }

    @Test func connectionLimitsApplyBeforeTheTLSHandshake() async throws {
        let state = Self.scratch()
        try await withProxy(yaml: Self.oneConnectionPerClientYAML(state: state)) { harness in
            let first = try harness.connect()  // holds the only slot, mid-handshake
            let second = try harness.connect()
            #expect(await second.waitForClose(timeout: 5))
            #expect(await harness.plane.counters()[.connectionsRefused] == 1)
            #expect(await harness.plane.counters()[.tlsHandshakeFailures] == 0)
            first.closeNow()
            let ca = LocalCertificateAuthority(stateDirectory: state).certificatePath
            #expect(
                await eventually {
                    (try? await Self.curl(["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}"], port: harness.port).output) == "200"
                })
        }
    }

    /// A TLS client that said its request was its last gets the response, close_notify and FIN,
    /// and its connection is gone at once, as nginx closes after its close_notify: gantry does
    /// not wait for the client's FIN, which a client may never send. With one connection per
    /// client, the next connection is served while the first client still holds its socket.
    @Test func aTLSConnectionTheClientEndsIsClosedWithoutWaitingForTheClient() async throws {
        let state = Self.scratch()
        try await withProxy(yaml: Self.oneConnectionPerClientYAML(state: state)) { harness in
            let ca = LocalCertificateAuthority(stateDirectory: state).certificatePath
            let directory = GantryProcess.scratchDirectory()
            let script = directory.appendingPathComponent("last-request.py").path
            try """
                import socket, ssl, sys, time
                context = ssl.create_default_context(cafile=sys.argv[2])
                raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
                connection = context.wrap_socket(raw, server_hostname="example.com")
                connection.sendall(b"GET /hello HTTP/1.1\\r\\nHost: example.com\\r\\nConnection: close\\r\\n\\r\\n")
                answer = b""
                while True:
                    chunk = connection.recv(65536)  # b"" at close_notify
                    if not chunk:
                        break
                    answer += chunk
                print(answer.split(b"\\r\\n", 1)[0].decode(), flush=True)
                time.sleep(600)  # holds the socket: no close_notify, no FIN
                """.write(toFile: script, atomically: true, encoding: .utf8)
            let client = try GantryProcess([script, "\(harness.port)", ca], directory: directory, executable: "python3")
            defer { client.signal(SIGKILL) }
            #expect(await eventually { client.stdout.contains("HTTP/1.1 200") }, "\(client.stderr)")
            // Once: a lingering connection would hold the client's only slot for seconds more.
            let next = try await Self.curl(["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}"], port: harness.port)
            #expect(next.output == "200", "\(next.error)")
            #expect(await harness.plane.counters()[.connectionsRefused] == 0)
        }
    }
}

extension LiveProxyTests {
    /// New certificates for a running listener are made before anything changes: a key that is
    /// not the certificate's refuses the change whole, and the listener serves its own as before;
    /// a good pair serves the next connections.
    @Test func aListenerChangeWithAKeyOfAnotherCertificateChangesNothing() async throws {
        let state = Self.scratch()
        for name in ["a", "b"] {
            let made = try await run(
                "openssl",
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=example.com",
                    "-addext", "subjectAltName=DNS:example.com", "-keyout", "\(state)/\(name).key", "-out", "\(state)/\(name).pem",
                ])
            #expect(made.status == 0, "\(made.error)")
        }
        let yaml = Self.tlsYAML(state: state, httpsPort: try await Self.freePort())
        try await withProxy(yaml: yaml) { harness in
            func listeners(certificate: String, key: String) throws -> RuntimeSnapshot {
                let text = yaml(harness.upstreamPorts).replacingOccurrences(
                    of: #"selfSigned: [example.com, "*.example.com"]"#, with: "certificates: [{certificate: \(certificate), key: \(key)}]")
                return try ConfigLoader.load(yaml: text, file: "test.yaml", coreCount: 2).get().snapshot
            }
            let localCA = LocalCertificateAuthority(stateDirectory: state).certificatePath
            func status(trusting ca: String) async throws -> String {
                try await Self.curl(["--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}"], port: harness.port).output
            }
            await #expect(throws: (any Error).self) { try await harness.plane.applyListeners(listeners(certificate: "\(state)/a.pem", key: "\(state)/b.key")) }
            #expect(try await status(trusting: localCA) == "200")

            _ = try await harness.plane.applyListeners(listeners(certificate: "\(state)/a.pem", key: "\(state)/a.key"))
            #expect(try await status(trusting: "\(state)/a.pem") == "200")
        }
    }
}
