/// How gantry speaks TLS to an upstream: a service's endpoints, or a key set or introspection
/// URL. Verification is always on: the peer's chain must lead to `caFile` (the system's trust
/// store when absent) and name the server, as Envoy's `UpstreamTlsContext` with a validation
/// context and nginx's `proxy_ssl_verify on` do.
public struct UpstreamTLS: Sendable, Hashable {
    public enum Version: String, Sendable, Hashable, CaseIterable {
        case tls12 = "1.2"
        case tls13 = "1.3"
    }

    /// PEM certificates to trust instead of the system's.
    public var caFile: String?
    /// Sent as SNI and checked against the certificate. Default: the endpoint's host when it is
    /// a name; for an IP address, no SNI and the certificate must carry the address.
    public var serverName: String?
    /// A client certificate and its key, for upstreams that ask for one (mutual TLS).
    public var clientCertificate: String?
    public var clientKey: String?
    public var minimumVersion: Version
    /// The connection speaks HTTP/2, agreed by ALPN (`h2`), rather than HTTP/1.1: set by the
    /// service's `protocol`, and part of what keeps its connections apart from HTTP/1.1 ones.
    public var http2 = false

    public init(
        caFile: String? = nil, serverName: String? = nil, clientCertificate: String? = nil, clientKey: String? = nil,
        minimumVersion: Version = .tls12
    ) {
        self.caFile = caFile
        self.serverName = serverName
        self.clientCertificate = clientCertificate
        self.clientKey = clientKey
        self.minimumVersion = minimumVersion
    }

    /// The name to send and verify for a connection to `host`: the configured one, else `host`
    /// unless it is an IP literal (SNI cannot carry one, RFC 6066 §3; the certificate's IP
    /// addresses are checked against the peer's instead).
    public func serverName(forHost host: String) -> String? {
        if let serverName { return serverName }
        if IPv4Address(host) != nil || host.contains(":") { return nil }
        return host
    }
}
