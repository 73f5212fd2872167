import ArgumentParser
import Foundation
import GantryConfig
import GantryExamples
import GantryKubernetes

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write what a gantry.yaml describes in another system's terms.",
        subcommands: [Kubernetes.self]
    )

    struct Kubernetes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write Kubernetes manifests that run the file's services and gantry as their gateway.",
            discussion: """
                Each service with pods becomes a Deployment, a Service, a HorizontalPodAutoscaler (with
                autoscaling) and a PodDisruptionBudget; each service with endpoints a Service without a
                selector and EndpointSlices. gantry itself becomes a Deployment running
                `gantry up --kubernetes` on a ConfigMap of the file's gateway parts, behind a Service of
                type LoadBalancer, with a ServiceAccount that may only read Services and EndpointSlices.
                The same file gives the same bytes. What Kubernetes cannot express is printed on stderr
                and commented in the manifests. `kubectl apply -f DIR` applies them.
                """
        )

        @Argument(help: "The configuration file. Default: the built-in example.")
        var file: String?

        @Option(name: .shortAndLong, help: "Write one file per service (and the gateway's) into this directory instead of standard output.")
        var output: String?

        @Option(help: "The namespace of every object.")
        var namespace = "default"

        @Option(help: "gantry's image: the gateway's, and that of pods without pods.image.")
        var image = "gantry:\(Gantry.version)"

        @Option(help: "The gateway's replicas.")
        var replicas = 2

        @Option(help: "Also write the routes as gateway-api HTTPRoutes or as an ingress, for another controller.")
        var routes: KubernetesExport.RouteObjects?

        func validate() throws {
            guard KubernetesExport.isDNSLabel(namespace) else {
                throw ValidationError("--namespace \(namespace): use at most 63 lowercase letters, digits and '-'")
            }
            guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
        }

        func run() throws {
            let loaded = try ConfigFile.load(fileOrExample: file)
            var options = KubernetesExport.Options(image: image)
            options.namespace = namespace
            options.gatewayReplicas = replicas
            options.routes = routes
            let output: KubernetesExport.Output
            do {
                output = try KubernetesExport.export(loaded, options: options)
            } catch {
                printError("gantry: \(error)")
                throw ExitCode(2)
            }
            for warning in output.warnings { printError("warning: \(warning)") }
            guard let directory = self.output else {
                FileHandleWriter.write(output.files.map { "# \($0.name)\n" + $0.yaml }.joined(separator: "---\n"), to: 1)
                return
            }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for file in output.files {
                try file.yaml.write(toFile: "\(directory)/\(file.name)", atomically: true, encoding: .utf8)
            }
            printError("gantry: wrote \(output.files.count) files (\(output.documents.count) objects) to \(directory); apply with kubectl apply -f \(directory)")
        }
    }
}

extension KubernetesExport.RouteObjects: ExpressibleByArgument {}
