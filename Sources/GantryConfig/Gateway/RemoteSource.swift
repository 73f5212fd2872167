import Foundation
import GantryCore

/// A server a policy asks: one of gantry's services (any ready endpoint) at a path, or a URL.
public enum RemoteSource: Sendable, Hashable {
    case service(name: String, path: String)
    case url(String)

    /// Where to send a request now: host, port and path with query; nil when the service has
    /// no ready endpoint or the URL has no host.
    public func target(in environment: any PolicyEnvironment) -> (host: String, port: Int, path: String)? {
        switch self {
        case .service(let name, let path):
            return environment.endpoint(ofService: name).map { ($0.host, $0.port, path) }
        case .url(let url):
            guard let parts = URLComponents(string: url), let host = parts.host else { return nil }
            let path = parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath
            return (host, parts.port ?? 80, path + (parts.percentEncodedQuery.map { "?\($0)" } ?? ""))
        }
    }

    static func compile(_ spec: RemoteSourceSpec, defaultPath: String, in compilation: inout PolicyCompilation, at key: PathComponent)
        -> RemoteSource?
    {
        if let url = spec.url {
            if !url.hasPrefix("http://") {
                compilation.problem(at: [key, "url"], "only http:// URLs are fetched; use {service: NAME, path: /…} for a service in gantry")
            }
            return .url(url)
        }
        guard let service = spec.service else { return nil }
        if !compilation.serviceNames.contains(service) {
            compilation.problem(
                at: [key, "service"], "unknown service \"\(service)\"" + Suggestion.hint(for: service, among: compilation.serviceNames))
        }
        let path = spec.path ?? defaultPath
        if !path.hasPrefix("/") { compilation.problem(at: [key, "path"], "must start with /") }
        return .service(name: service, path: path)
    }
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

    public static let exclusiveKeys = ExclusiveKeySet(["url", "service"])
}
