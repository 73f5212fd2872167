import Foundation
import ArgumentParser
import GantryConfig
import GantryExamples
import GantryHandover
import GantryKubernetes
import GantryPods
import GantryProxy
import Logging
import ServiceLifecycle

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run everything a gantry.yaml describes until SIGINT or SIGTERM.",
        discussion: """
            Without a file, runs the built-in example: example.com/auth → auth-service and
            example.com/app → app-service, each with its pods (`gantry example config` prints it).

            The file is applied again, live, when it changes on disk, on SIGHUP and on `gantry apply`:
            checked in full first (a file with a problem changes nothing), then applied without
            dropping a request; `gantry diff` shows what would change.

            On SIGINT or SIGTERM gantry stops accepting connections, lets requests in flight finish
            (up to runtime.shutdownGracePeriod, 30s by default), drains and stops every pod, and
            exits 0. A gantry that dies without stopping its pods (SIGKILL, a crash) leaves them
            running: the next `gantry up` on the same state directory takes them over.

            With --takeover, a new gantry (a new binary, say) takes over from the one running on
            the same state directory without dropping a request: it receives its listening
            sockets and its pods, and the old one finishes its requests in flight and exits.
            SIGUSR2 makes a running gantry start that successor itself (its binary's path, its
            arguments and --takeover).
            """
    )

    @Argument(help: "The configuration file. Default: the built-in example.")
    var file: String?

    @Flag(inversion: .prefixedNo, help: "Apply the file again when it changes on disk (SIGHUP and `gantry apply` work either way).")
    var watch = true

    @Option(help: "Log level for gantry's own log on stderr: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    @Flag(help: "Take over from the gantry running on the same state directory: its listening sockets and its pods.")
    var takeover = false

    @Flag(help: "Run as the gateway in a Kubernetes cluster: services take their endpoints from the cluster's EndpointSlices; no pods or autoscalers run.")
    var kubernetes = false

    func run() async throws {
        let loaded = try ConfigFile.load(fileOrExample: file, endpointsFromCluster: kubernetes)
        let cluster: KubernetesAPI?
        do {
            cluster = try kubernetes ? KubernetesAPI(cluster: KubernetesCluster.discover()) : nil
        } catch {
            printError("gantry: \(error)")
            throw ExitCode(2)
        }
        if let cluster {
            printError("gantry: endpoints from the Kubernetes API at \(cluster.cluster.scheme)://\(cluster.cluster.host):\(cluster.cluster.port), namespace \(cluster.cluster.namespace)")
        }
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gantry")
        let snapshot = loaded.snapshot
        var predecessor: Stack.Predecessor?
        if takeover {
            let client = try TakeoverClient(stateDirectory: Stack.absolute(snapshot.stateDirectory))
            let (offer, descriptors) = try client.request()
            Handover.shared.inherit(descriptors)
            predecessor = Stack.Predecessor(client: client, pid: offer.pid, pods: offer.pods)
        }
        let sink = snapshot.accessLog.enabled ? try AccessLogSink(destination: snapshot.accessLog.destination) : nil
        // Spans are exported by an exporter that stops after the stack, so the last requests'
        // spans are sent before gantry exits.
        let spans = SpanExporter(logger: logger)
        let tracer = await spans.start(try spans.prepare(snapshot.otlp))
        let plane = DataPlane(snapshot: snapshot, accessLog: sink, tracer: tracer, logger: logger)
        let events = EventRecorder { event in
            guard level <= .info || event.kind == .warning else { return }
            printError("gantry: \(event.kind.rawValue) \(event.reason) \(event.object) \(event.message)")
        }
        let source = file.map { $0.hasPrefix("/") ? $0 : FileManager.default.currentDirectoryPath + "/" + $0 } ?? BuiltInExample.name
        let stack = Stack(
            loaded: loaded, source: source, watchesFile: file != nil && watch, plane: plane, spans: spans, logger: logger, events: events,
            predecessor: predecessor, cluster: cluster)
        // The stack also returns by itself once another gantry has taken over from it: that ends
        // the group as a shutdown does.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: stack, successTerminationBehavior: .gracefullyShutdownGroup)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            printError("gantry: \(error)")
            await spans.stop()
            try? await plane.group.shutdownGracefully()
            throw ExitCode(1)
        }
        try? await plane.group.shutdownGracefully()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
