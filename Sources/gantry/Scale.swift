import ArgumentParser

struct Scale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change how many pods a service runs.",
        discussion: "Pods that go drain first: they leave the endpoints, finish their requests, then stop.")

    @Argument(help: "The service.")
    var service: String

    @Option(help: "The number of pods.")
    var replicas: Int

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        _ = try await admin.send(.POST, "/api/services/\(service)/scale", body: ["replicas": replicas])
        FileHandleWriter.write("service/\(service) scaled to \(replicas)\n", to: 1)
    }
}
