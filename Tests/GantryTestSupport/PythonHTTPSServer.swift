import Foundation

/// Python's ssl module (OpenSSL) serving HTTPS on loopback: another TLS stack than gantry's.
/// Each answer says what the server saw: the SNI, the client certificate's name, the TLS
/// version, and how many connections it has accepted so far. `/healthz` answers 200.
public final class PythonHTTPSServer: Sendable {
    let peer: PythonPeer
    public var port: Int { peer.port }

    static let script = #"""
        import json, ssl, sys, http.server
        cert, key, client_ca, max_version, jwks = sys.argv[1:6]
        accepted = 0
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def setup(self):
                global accepted
                accepted += 1
                super().setup()
            def do_GET(self):
                if self.path == "/jwks.json":
                    body = open(jwks, "rb").read()
                else:
                    peer = self.connection.getpeercert() or {}
                    names = [value for rdn in peer.get("subject", ()) for (field, value) in rdn if field == "commonName"]
                    body = json.dumps({"path": self.path, "sni": getattr(self.connection, "sni", None),
                                       "client": names[0] if names else None, "version": self.connection.version(),
                                       "connections": accepted}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args):
                pass
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        if client_ca != "-":
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        if max_version == "1.2":
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        def remember(connection, name, _):
            connection.sni = name
        context.sni_callback = remember
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        print("https on 127.0.0.1:%d" % server.server_address[1], flush=True)
        server.serve_forever()
        """#

    /// - Parameters:
    ///   - clientCA: require a client certificate signed by this CA.
    ///   - maxVersion: "1.2" to refuse TLS 1.3.
    ///   - jwks: the file served at `/jwks.json`.
    public init(pki: TestPKI, clientCA: String? = nil, maxVersion: String = "1.3", jwks: String = "/dev/null") async throws {
        peer = try await PythonPeer(
            script: Self.script, named: "https-server.py",
            arguments: [pki.serverCertificate, pki.serverKey, clientCA ?? "-", maxVersion, jwks], marker: "https on 127.0.0.1:")
    }
}
