import Foundation

/// Certificates made with the openssl command line, as an operator makes them: a CA, a server
/// certificate for `backend.internal` and 127.0.0.1, a client certificate, and a second CA that
/// nothing trusts.
public struct TestPKI: Sendable {
    public let directory: String
    public var ca: String { directory + "/ca.pem" }
    public var rogueCA: String { directory + "/rogue.pem" }
    public var serverCertificate: String { directory + "/server.pem" }
    public var serverKey: String { directory + "/server.key" }
    public var clientCertificate: String { directory + "/client.pem" }
    public var clientKey: String { directory + "/client.key" }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func make() async throws -> TestPKI {
        let pki = TestPKI(directory: GantryProcess.scratchDirectory().path)
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        for (name, subject) in [("ca", "/CN=Test CA"), ("rogue", "/CN=Rogue CA")] {
            try await pki.openssl(["req", "-x509"] + curve + ["-days", "2", "-subj", subject, "-keyout", "\(pki.directory)/\(name).key", "-out", "\(pki.directory)/\(name).pem"])
        }
        for (name, subject, extensions) in [
            ("server", "/CN=backend.internal", "subjectAltName=DNS:backend.internal,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
            ("client", "/CN=gantry-client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let base = "\(pki.directory)/\(name)"
            try extensions.write(toFile: base + ".ext", atomically: true, encoding: .utf8)
            try await pki.openssl(["req"] + curve + ["-subj", subject, "-keyout", base + ".key", "-out", base + ".csr"])
            try await pki.openssl([
                "x509", "-req", "-in", base + ".csr", "-CA", pki.ca, "-CAkey", "\(pki.directory)/ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", base + ".ext", "-out", base + ".pem",
            ])
        }
        return pki
    }

    private func openssl(_ arguments: [String]) async throws {
        let made = try await run("openssl", arguments)
        guard made.status == 0 else { throw Failure(description: "openssl \(arguments.joined(separator: " ")): \(made.error)") }
    }
}
