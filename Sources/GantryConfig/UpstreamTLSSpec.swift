import Foundation
import GantryCore

/// `services[i].tls:` and `…introspection.tls:` / `…jwks.tls:` — the upstream speaks TLS.
/// `tls: {}` trusts the system's certificate authorities.
public struct UpstreamTLSSpec: Decodable, Sendable {
    /// PEM certificates to trust instead of the system's store. Relative paths start at the file.
    public var caFile: String?
    /// SNI and the name the certificate must carry. Default: the endpoint's host name; none for
    /// an IP address, whose certificate must then carry the address.
    public var serverName: String?
    /// Mutual TLS: gantry's certificate chain and key (PEM), both or neither.
    public var clientCertificate: String?
    public var clientKey: String?
    /// `"1.2"` (default) or `"1.3"`.
    public var minVersion: String?

    /// The settings, with each problem handed to `problem` at its key. Files are checked for
    /// what they must hold here, so that a wrong path is a configuration error rather than a 502
    /// on the first request.
    func compile(resolve: (String) -> String, problem: (PathComponent, String) -> Void) -> UpstreamTLS {
        func pem(_ file: String?, key: PathComponent, holding marker: String, kind: String) -> String? {
            guard let file else { return nil }
            let path = resolve(file)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                problem(key, "cannot read \(path): check the path (relative paths start at the file's directory)")
                return path
            }
            if !text.contains(marker) { problem(key, "\(path) holds no PEM \(kind) (no \"\(marker)\" line)") }
            return path
        }
        var settings = UpstreamTLS()
        settings.caFile = pem(caFile, key: "caFile", holding: "-----BEGIN CERTIFICATE-----", kind: "certificate")
        settings.clientCertificate = pem(clientCertificate, key: "clientCertificate", holding: "-----BEGIN CERTIFICATE-----", kind: "certificate")
        settings.clientKey = pem(clientKey, key: "clientKey", holding: "PRIVATE KEY-----", kind: "private key")
        if (clientCertificate == nil) != (clientKey == nil) {
            problem(clientKey == nil ? "clientKey" : "clientCertificate", "clientCertificate and clientKey go together: give both or neither")
        }
        if let serverName {
            if serverName.isEmpty || serverName.contains(where: { $0 == " " || $0 == "/" }) {
                problem("serverName", "\"\(serverName)\" is not a host name, e.g. api.internal")
            } else if IPv4Address(serverName) != nil || serverName.contains(":") {
                problem("serverName", "\(serverName) is an address, which SNI cannot carry: leave serverName out, and the certificate must carry the endpoint's address")
            }
            settings.serverName = serverName
        }
        if let minVersion {
            if let version = UpstreamTLS.Version(rawValue: minVersion) {
                settings.minimumVersion = version
            } else {
                problem("minVersion", "\"\(minVersion)\" is not a TLS version gantry speaks: write \"1.2\" or \"1.3\"")
            }
        }
        return settings
    }
}
