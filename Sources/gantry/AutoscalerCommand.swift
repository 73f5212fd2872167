import ArgumentParser
import Foundation
import GantryCore

struct AutoscalerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "autoscaler", abstract: "Work with the Horizontal Pod Autoscaler's decisions.", subcommands: [Simulate.self])

    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decide like the live autoscaler, from a JSON description of the moment.",
            discussion: """
                Reads the input (pods with readiness, start time and samples; targets; behavior; earlier
                recommendations and scale events; now) from FILE or standard input and prints the decision,
                its reason and the limits that applied, as JSON. docs/autoscaling.md describes the format.
                """)

        @Argument(help: "The input JSON; standard input when absent.")
        var file: String?

        func run() throws {
            let data = try file.map { try Data(contentsOf: URL(fileURLWithPath: $0)) } ?? FileHandle.standardInput.readDataToEndOfFile()
            let input: Autoscaling.Input
            do {
                input = try JSONDecoder().decode(Autoscaling.Input.self, from: data)
            } catch {
                printError("gantry: the input is not an autoscaler input: \(error)")
                throw ExitCode(2)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let decision = HPACalculator.decide(input)
            FileHandleWriter.write(String(decoding: try encoder.encode(decision), as: UTF8.self) + "\n", to: 1)
        }
    }
}
