import ArgumentParser

struct Rollout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the rollout of a service's pods.",
        subcommands: [Restart.self])

    struct Restart: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace every pod of a service, one at a time, without dropping a request.",
            discussion: """
                A new pod starts first; once it is ready, an old one leaves the endpoints, finishes its
                requests and stops. Returns at once; `gantry get pods` shows the progress.
                """)

        @Argument(help: "The service.")
        var service: String

        @OptionGroup var admin: AdminOptions

        func run() async throws {
            _ = try await admin.send(.POST, "/api/services/\(service)/restart")
            FileHandleWriter.write("service/\(service) restarted\n", to: 1)
        }
    }
}
