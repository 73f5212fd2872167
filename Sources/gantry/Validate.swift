import ArgumentParser
import GantryConfig

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check gantry.yaml and print every problem, each with its file, line, column and key path.",
        discussion: "Exits 0 when the file is valid, 2 when it is not."
    )

    @Argument(help: "The configuration file.")
    var file: String = "gantry.yaml"

    @Flag(help: "Check the file as `gantry up --kubernetes` reads it: services take their endpoints from the cluster.")
    var kubernetes = false

    func run() throws {
        let loaded = try ConfigFile.load(file, endpointsFromCluster: kubernetes)
        let snapshot = loaded.snapshot
        print(
            "\(file) is valid: \(snapshot.listeners.count) listener(s), \(snapshot.routes.rules.count) route(s), \(snapshot.services.count) service(s)"
        )
    }
}
