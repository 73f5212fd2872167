import Foundation
import Subprocess
import Yams

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Where the Kubernetes API server is and how gantry proves who it is: from the pod's service
/// account inside a cluster, or from a kubeconfig outside one (as kubectl finds it).
public struct KubernetesCluster: Sendable {
    public enum Credential: Sendable {
        case none
        case token(String)
        /// Read again for every request: kubelet rotates a projected service-account token
        /// (hourly by default) by replacing the file.
        case tokenFile(String)
        /// A kubeconfig `exec` credential plugin (`aws eks get-token`…), run for every request
        /// that opens a list or watch; it prints an ExecCredential with the token.
        case exec(command: String, arguments: [String], environment: [String: String])
    }

    public var scheme: String
    public var host: String
    public var port: Int
    public var namespace: String
    /// PEM certificates to trust for the API server; nil: the system's.
    public var certificateAuthority: [UInt8]?
    public var serverName: String?
    public var insecureSkipVerify = false
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    public var credential: Credential = .none

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    public init(scheme: String, host: String, port: Int, namespace: String) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.namespace = namespace
    }

    /// The service account's files, as kubelet mounts them in every pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// Inside a pod (`KUBERNETES_SERVICE_HOST` set), the service account; else `$KUBECONFIG`, else
    /// `~/.kube/config`. `serviceAccountDirectory` is a parameter for tests.
    public static func discover(
        environment: [String: String] = ProcessInfo.processInfo.environment, serviceAccountDirectory: String = serviceAccountDirectory
    ) throws -> KubernetesCluster {
        if let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty {
            return try inCluster(host: host, port: environment["KUBERNETES_SERVICE_PORT"], directory: serviceAccountDirectory)
        }
        let path = environment["KUBECONFIG"].flatMap { $0.split(separator: ":").first.map(String.init) }
            ?? environment["HOME"].map { "\($0)/.kube/config" }
        guard let path, FileManager.default.fileExists(atPath: path) else {
            throw Failure(
                "no Kubernetes API server: KUBERNETES_SERVICE_HOST is not set (not in a pod) and there is no kubeconfig (set KUBECONFIG or write ~/.kube/config)")
        }
        return try kubeconfig(at: path)
    }

    static func inCluster(host: String, port: String?, directory: String) throws -> KubernetesCluster {
        guard let port = Int(port ?? "443") else { throw Failure("KUBERNETES_SERVICE_PORT \(port ?? "") is not a port") }
        let namespace = (try? String(contentsOfFile: "\(directory)/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "default"
        var cluster = KubernetesCluster(scheme: "https", host: host, port: port, namespace: namespace)
        guard FileManager.default.fileExists(atPath: "\(directory)/token") else {
            throw Failure("\(directory)/token is missing: the pod needs a service account token (automountServiceAccountToken)")
        }
        cluster.credential = .tokenFile("\(directory)/token")
        cluster.certificateAuthority = FileManager.default.contents(atPath: "\(directory)/ca.crt").map { Array($0) }
        return cluster
    }

    // MARK: kubeconfig

    private struct Config: Decodable {
        struct Named<T: Decodable>: Decodable {
            let name: String
            let value: T?

            enum CodingKeys: String, CodingKey { case name, cluster, user, context }

            init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                name = try container.decode(String.self, forKey: .name)
                value = try container.decodeIfPresent(T.self, forKey: .cluster) ?? container.decodeIfPresent(T.self, forKey: .user)
                    ?? container.decodeIfPresent(T.self, forKey: .context)
            }
        }

        struct Cluster: Decodable {
            let server: String
            let certificateAuthority: String?
            let certificateAuthorityData: String?
            let insecureSkipTLSVerify: Bool?
            let tlsServerName: String?

            enum CodingKeys: String, CodingKey {
                case server
                case certificateAuthority = "certificate-authority"
                case certificateAuthorityData = "certificate-authority-data"
                case insecureSkipTLSVerify = "insecure-skip-tls-verify"
                case tlsServerName = "tls-server-name"
            }
        }

        struct User: Decodable {
            struct Exec: Decodable {
                struct Variable: Decodable {
                    let name: String
                    let value: String
                }

                let command: String
                let args: [String]?
                let env: [Variable]?
            }

            let token: String?
            let tokenFile: String?
            let clientCertificate: String?
            let clientCertificateData: String?
            let clientKey: String?
            let clientKeyData: String?
            let exec: Exec?

            enum CodingKeys: String, CodingKey {
                case token, exec
                case tokenFile = "tokenFile"
                case clientCertificate = "client-certificate"
                case clientCertificateData = "client-certificate-data"
                case clientKey = "client-key"
                case clientKeyData = "client-key-data"
            }
        }

        struct Context: Decodable {
            let cluster: String
            let user: String?
            let namespace: String?
        }

        let clusters: [Named<Cluster>]?
        let users: [Named<User>]?
        let contexts: [Named<Context>]?
        let currentContext: String?

        enum CodingKeys: String, CodingKey {
            case clusters, users, contexts
            case currentContext = "current-context"
        }
    }

    /// The current context of a kubeconfig file; relative file paths in it are relative to it.
    public static func kubeconfig(at path: String) throws -> KubernetesCluster {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw Failure("cannot read the kubeconfig \(path)") }
        let config: Config
        do {
            config = try YAMLDecoder().decode(Config.self, from: text)
        } catch {
            throw Failure("\(path) is not a kubeconfig: \(error)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        func file(_ name: String) throws -> [UInt8] {
            let full = name.hasPrefix("/") ? name : "\(directory)/\(name)"
            guard let data = FileManager.default.contents(atPath: full) else { throw Failure("\(path): cannot read \(full)") }
            return Array(data)
        }
        func decoded(_ base64: String, _ field: String) throws -> [UInt8] {
            guard let data = Data(base64Encoded: base64.filter { !$0.isWhitespace }) else { throw Failure("\(path): \(field) is not base64") }
            return Array(data)
        }
        guard let contextName = config.currentContext,
            let context = config.contexts?.first(where: { $0.name == contextName })?.value
        else {
            throw Failure("\(path) has no current-context (kubectl config use-context NAME)")
        }
        guard let cluster = config.clusters?.first(where: { $0.name == context.cluster })?.value else {
            throw Failure("\(path): context \(contextName) names cluster \(context.cluster), which is not in the file")
        }
        guard let url = URLComponents(string: cluster.server), let scheme = url.scheme, scheme == "https" || scheme == "http", let host = url.host
        else {
            throw Failure("\(path): cluster \(context.cluster)'s server \(cluster.server) is not an http(s) URL")
        }
        var result = KubernetesCluster(
            scheme: scheme, host: host, port: url.port ?? (scheme == "https" ? 443 : 80), namespace: context.namespace ?? "default")
        result.serverName = cluster.tlsServerName
        result.insecureSkipVerify = cluster.insecureSkipTLSVerify ?? false
        if let data = cluster.certificateAuthorityData {
            result.certificateAuthority = try decoded(data, "certificate-authority-data")
        } else if let name = cluster.certificateAuthority {
            result.certificateAuthority = try file(name)
        }
        if let userName = context.user, let user = config.users?.first(where: { $0.name == userName })?.value {
            if let data = user.clientCertificateData {
                result.clientCertificate = try decoded(data, "client-certificate-data")
            } else if let name = user.clientCertificate {
                result.clientCertificate = try file(name)
            }
            if let data = user.clientKeyData {
                result.clientKey = try decoded(data, "client-key-data")
            } else if let name = user.clientKey {
                result.clientKey = try file(name)
            }
            if let token = user.token {
                result.credential = .token(token)
            } else if let name = user.tokenFile {
                result.credential = .tokenFile(name.hasPrefix("/") ? name : "\(directory)/\(name)")
            } else if let exec = user.exec {
                result.credential = .exec(
                    command: exec.command, arguments: exec.args ?? [],
                    environment: Dictionary((exec.env ?? []).map { ($0.name, $0.value) }, uniquingKeysWith: { $1 }))
            }
        }
        return result
    }

    // MARK: Per request

    /// The `Authorization` header for the next request, read fresh.
    func authorization() async throws -> String? {
        switch credential {
        case .none:
            return nil
        case .token(let token):
            return "Bearer \(token)"
        case .tokenFile(let path):
            guard let token = try? String(contentsOfFile: path, encoding: .utf8) else { throw Failure("cannot read the token file \(path)") }
            return "Bearer \(token.trimmingCharacters(in: .whitespacesAndNewlines))"
        case .exec(let command, let arguments, let environment):
            return "Bearer \(try await Self.execToken(command: command, arguments: arguments, environment: environment))"
        }
    }

    /// Runs a client-go credential plugin and reads `status.token` from its ExecCredential. With
    /// swift-subprocess, as pods are started: Foundation's `Process` closes descriptors the
    /// process does not own while it spawns, which took sockets from under NIO.
    private static func execToken(command: String, arguments: [String], environment: [String: String]) async throws -> String {
        var overrides: [Environment.Key: String?] = [:]
        for (name, value) in environment { overrides[Environment.Key(stringLiteral: name)] = value }
        let executable: Executable = command.contains("/") ? .path(FilePath(command)) : .name(command)
        let result = try await Subprocess.run(
            executable, arguments: Arguments(arguments), environment: .inherit.updating(overrides), output: .bytes(limit: 1 << 20),
            error: .discarded)
        struct ExecCredential: Decodable {
            struct Status: Decodable { let token: String? }
            let status: Status?
        }
        guard result.terminationStatus.isSuccess,
            let token = (try? JSONDecoder().decode(ExecCredential.self, from: Data(result.standardOutput)))?.status?.token
        else {
            let ending: String
            switch result.terminationStatus {
            case .exited(let code): ending = "exit \(code)"
            case .signaled(let signal): ending = "signal \(signal)"
            }
            throw Failure("the credential plugin \(command) gave no token (\(ending))")
        }
        return token
    }
}
