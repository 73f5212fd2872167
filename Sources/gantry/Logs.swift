import ArgumentParser
import Foundation
import GantryPods

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a pod's standard output and error.")

    @Argument(help: "The pod, e.g. app-service-7d9f2.")
    var pod: String

    @Flag(name: .shortAndLong, help: "Keep printing what the pod writes.")
    var follow = false

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        let pods = try await admin.get("/api/pods", as: [PodStatus].self)
        guard let status = pods.first(where: { $0.name == pod }) else {
            printError("gantry: no pod named \"\(pod)\"; `gantry get pods` lists them")
            throw ExitCode(1)
        }
        guard let handle = FileHandle(forReadingAtPath: status.log) else {
            printError("gantry: cannot read \(status.log)")
            throw ExitCode(1)
        }
        while true {
            let data = handle.readDataToEndOfFile()
            if !data.isEmpty { FileHandleWriter.write(String(decoding: data, as: UTF8.self), to: 1) }
            guard follow else { return }
            try await Task.sleep(for: .milliseconds(250))
        }
    }
}
