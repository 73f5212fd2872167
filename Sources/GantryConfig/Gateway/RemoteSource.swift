import Foundation
import GantryCore

/// A server a policy asks: one of gantry's services (any ready endpoint) at a path, or a URL.
public enum RemoteSource: Sendable, Hashable {
    case service(name: String, path: String)
    /// `tls` holds the options for an `https://` URL; it is ignored for `http://`.
    case url(String, tls: UpstreamTLS? = nil)

    /// Where to send a request now; nil when the service has no ready endpoint or the URL has
    /// no host.
    public func target(in environment: any PolicyEnvironment) -> RemoteTarget? {
        switch self {
        case .service(let name, let path):
            return environment.endpoint(ofService: name).map {
                RemoteTarget(host: $0.host, port: $0.port, path: path, tls: environment.upstreamTLS(ofService: name))
            }
        case .url(let url, let options):
            guard let parts = URLComponents(string: url), let host = parts.host else { return nil }
            let secure = parts.scheme?.lowercased() == "https"
            let path = parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath
            return RemoteTarget(
                host: host, port: parts.port ?? (secure ? 443 : 80), path: path + (parts.percentEncodedQuery.map { "?\($0)" } ?? ""),
                tls: secure ? (options ?? UpstreamTLS()) : nil)
        }
    }

    static func compile(_ spec: RemoteSourceSpec, defaultPath: String, in compilation: inout PolicyCompilation, at key: PathComponent)
        -> RemoteSource?
    {
        if let url = spec.url {
            let lowered = url.lowercased()
            let secure = lowered.hasPrefix("https://")
            if !secure, !lowered.hasPrefix("http://") {
                compilation.problem(at: [key, "url"], "only http:// and https:// URLs are fetched; use {service: NAME, path: /…} for a service in gantry")
            }
            var tls: UpstreamTLS?
            if let options = spec.tls {
                if !secure { compilation.problem(at: [key, "tls"], "tls applies to https:// URLs: change the URL to https:// or remove tls") }
                let sourceFile = compilation.sourceFile
                var problems: [(PathComponent, String)] = []
                tls = options.compile(resolve: { SpecCompiler.resolve($0, besides: sourceFile) }, problem: { problems.append(($0, $1)) })
                for (component, message) in problems { compilation.problem(at: [key, "tls", component], message) }
            }
            return .url(url, tls: tls)
        }
        guard let service = spec.service else { return nil }
        if !compilation.serviceNames.contains(service) {
            compilation.problem(
                at: [key, "service"], "unknown service \"\(service)\"" + Suggestion.hint(for: service, among: compilation.serviceNames))
        }
        if spec.tls != nil { compilation.problem(at: [key, "tls"], "a service's sources use the service's own tls: move it to services[…].tls") }
        let path = spec.path ?? defaultPath
        if !path.hasPrefix("/") { compilation.problem(at: [key, "path"], "must start with /") }
        return .service(name: service, path: path)
    }
}

/// Where one request of a policy goes.
public struct RemoteTarget: Sendable {
    public var host: String
    public var port: Int
    /// With the query.
    public var path: String
    /// Set for HTTPS.
    public var tls: UpstreamTLS?
}

/// `{service: auth-service, path: /…}` or `{url: http://…}`.
public struct RemoteSourceSpec: Decodable, Sendable, ExclusiveKeys {
    public var url: String?
    public var service: String?
    public var path: String?
    /// Key sets: fetched again this often. Default 5m.
    public var refreshInterval: DurationSpec?
    /// Key sets: the least time between two fetches caused by a token with an unknown `kid`.
    /// Default 30s.
    public var minRefetchInterval: DurationSpec?
    /// For an `https://` URL: the certificate authority, client certificate… (default: the
    /// system's trust store). A service's own `tls` applies to `service:` sources.
    public var tls: UpstreamTLSSpec?

    public static let exclusiveKeys = ExclusiveKeySet(["url", "service"])
}
