import ArgumentParser
import GantryConfig
import GantryProxy
import Logging
import ServiceLifecycle

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run everything gantry.yaml describes until SIGINT or SIGTERM.",
        discussion: """
            On SIGINT or SIGTERM gantry stops accepting connections, lets requests in flight finish
            (up to runtime.shutdownGracePeriod, 30s by default) and exits 0.
            """
    )

    @Argument(help: "The configuration file.")
    var file: String = "gantry.yaml"

    @Option(help: "Log level for gantry's own log on stderr: trace, debug, info, notice, warning, error.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        let loaded = try ConfigFile.load(file)
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gantry")
        let snapshot = loaded.snapshot
        let sink = snapshot.accessLog.enabled ? try AccessLogSink(destination: snapshot.accessLog.destination) : nil
        let plane = DataPlane(snapshot: snapshot, accessLog: sink, logger: logger)
        let proxy = DataPlaneService(plane: plane) { bound in
            for listener in bound {
                printError("gantry: listener \(listener.name) on http://\(listener.host):\(listener.port)")
            }
            printError("gantry: ready (\(snapshot.routes.rules.count) routes, \(snapshot.services.count) services); Ctrl-C to stop")
        }
        let group = ServiceGroup(
            services: [proxy], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
        try? await plane.group.shutdownGracefully()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
