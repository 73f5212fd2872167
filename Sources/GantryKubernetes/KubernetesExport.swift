import GantryConfig
import GantryCore
import Yams

/// gantry.yaml as Kubernetes manifests that a cluster runs as they are (`gantry export
/// kubernetes`): each service with pods as a Deployment, a Service, a HorizontalPodAutoscaler
/// and a PodDisruptionBudget; each service with static endpoints as a selector-less Service and
/// its EndpointSlices; gantry itself as the gateway Deployment running `gantry up --kubernetes`
/// on a ConfigMap of the file's gateway parts. Pure: the same file and options give the same
/// bytes.
public struct KubernetesExport {
    public enum RouteObjects: String, Sendable, CaseIterable {
        case gatewayAPI = "gateway-api"
        case ingress
    }

    public struct Options: Sendable {
        public var namespace = "default"
        /// The image of the gateway, and of pods without `pods.image`.
        public var image: String
        public var gatewayReplicas = 2
        /// Also write the routes for another controller.
        public var routes: RouteObjects?

        public init(image: String) {
            self.image = image
        }
    }

    /// One file of the output: objects applied together, in the order a cluster needs them.
    public struct File: Sendable {
        public let name: String
        public let documents: [ManifestDocument]

        /// The file's text: its documents separated by `---`.
        public var yaml: String {
            documents.map(\.yaml).joined(separator: "---\n")
        }
    }

    public struct Output: Sendable {
        public let files: [File]
        /// What Kubernetes objects cannot express, as `path: what happens instead`.
        public let warnings: [String]

        public var documents: [ManifestDocument] { files.flatMap(\.documents) }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The label every object carries, and gantry's label selector.
    public static let managedBy = ("app.kubernetes.io/managed-by", "gantry")
    /// The gateway's objects' name.
    public static let gatewayName = "gantry"
    public static let redisName = "gantry-redis"

    let loaded: LoadedConfig
    let options: Options
    /// The file as YAML nodes, for the ConfigMap: the gateway's parts as written.
    let root: Node
    var warnings: [String] = []

    var snapshot: RuntimeSnapshot { loaded.snapshot }
    /// The file's name without its directory: the output does not depend on where it was run.
    var sourceName: String { String(snapshot.sourceFile.split(separator: "/").last ?? "") }
    var spec: GantrySpec { loaded.spec }

    public static func export(_ loaded: LoadedConfig, options: Options) throws -> Output {
        guard let root = try? Yams.compose(yaml: loaded.text) else { throw Failure(description: "the file is not YAML") }
        var export = KubernetesExport(loaded: loaded, options: options, root: root)
        return try export.run()
    }

    private mutating func run() throws -> Output {
        for reserved in [Self.gatewayName, Self.redisName] where snapshot.service(named: reserved) != nil {
            throw Failure(description: "a service named \(reserved) would clash with gantry's own objects: rename it")
        }
        var files: [File] = []
        if options.namespace != "default" {
            files.append(File(name: "00-namespace.yaml", documents: [ManifestDocument(["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(options.namespace), "labels": labels(nil)]])]))
        }
        if usesRedis { files.append(File(name: "10-\(Self.redisName).yaml", documents: redisObjects())) }
        for (index, service) in snapshot.services.enumerated() {
            let serviceSpec = spec.services?[index]
            let documents = service.pods != nil ? podObjects(service, spec: serviceSpec?.pods) : staticObjects(service)
            files.append(File(name: "20-\(service.name).yaml", documents: documents))
        }
        files.append(File(name: "30-\(Self.gatewayName).yaml", documents: try gatewayObjects()))
        switch options.routes {
        case .gatewayAPI?: files.append(File(name: "40-httproutes.yaml", documents: httpRoutes()))
        case .ingress?: files.append(File(name: "40-ingress.yaml", documents: [ingress()]))
        case nil: break
        }
        return Output(files: files, warnings: warnings)
    }

    // MARK: Common parts

    /// `app.kubernetes.io/name` for an object of `component` (nil: gantry's namespace-wide ones).
    func labels(_ component: String?) -> Manifest {
        var map = ManifestMap()
        if let component { map["app.kubernetes.io/name"] = .string(component) }
        map["app.kubernetes.io/part-of"] = "gantry"
        map[Self.managedBy.0] = .string(Self.managedBy.1)
        return .map(map)
    }

    func selector(_ component: String) -> Manifest {
        ["app.kubernetes.io/name": .string(component)]
    }

    func metadata(_ name: String, component: String?, annotations: Manifest? = nil) -> Manifest {
        var map = ManifestMap()
        map["name"] = .string(name)
        map["namespace"] = .string(options.namespace)
        map["labels"] = labels(component)
        map["annotations"] = annotations
        return .map(map)
    }

    func object(_ apiVersion: String, _ kind: String, _ name: String, component: String?, spec: Manifest? = nil) -> ManifestMap {
        var map = ManifestMap()
        map["apiVersion"] = .string(apiVersion)
        map["kind"] = .string(kind)
        map["metadata"] = metadata(name, component: component)
        map["spec"] = spec
        return map
    }

    mutating func warn(_ path: String, _ message: String) {
        warnings.append("\(path): \(message)")
    }

    /// A port's name: an IANA service name, at most 15 lowercase letters, digits and '-'.
    static func portName(_ text: String) -> String {
        var name = String(text.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }.prefix(15))
        while name.hasSuffix("-") { name.removeLast() }
        while name.hasPrefix("-") { name.removeFirst() }
        return name.contains(where: \.isLetter) ? name : "p-\(name)"
    }

    /// An object name (RFC 1123 subdomain) from a route's name such as `example.com/app`.
    static func objectName(_ text: String) -> String {
        var name = ""
        for character in text.lowercased() {
            let keep = character.isASCII && (character.isLetter || character.isNumber)
            if keep { name.append(character) } else if !name.hasSuffix("-"), !name.isEmpty { name.append("-") }
        }
        while name.hasSuffix("-") { name.removeLast() }
        return name.isEmpty ? "root" : String(name.prefix(253))
    }

    /// Whole seconds, rounded up so that a shorter timeout never becomes zero.
    static func seconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(seconds) + (attoseconds > 0 ? 1 : 0)
    }

    /// A Kubernetes quantity for a metric target: `20`, or `500m` for a fraction.
    static func quantity(_ value: Double) -> Manifest {
        value == value.rounded() ? .string(String(Int(value))) : .string("\(Int((value * 1000).rounded()))m")
    }

    /// The indices of the policies that keep their rate limits in Redis (`store: {redis: host:port}`).
    var redisStores: [Int] {
        (gatewayNode["policies"]?.sequence ?? []).enumerated().compactMap { index, policy in
            policy["rateLimit"]?["store"]?["redis"] == nil ? nil : index
        }
    }

    var usesRedis: Bool { !redisStores.isEmpty }

    var gatewayNode: Node { root["gateway"] ?? Node.mapping(Node.Mapping([])) }
}

extension KubernetesExport {
    /// An RFC 1123 label: what a namespace's name must be.
    public static func isDNSLabel(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 63 && text.first != "-" && text.last != "-"
            && text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
    }
}
