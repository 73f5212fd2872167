import ArgumentParser
import Foundation
import GantryAdmin
import GantryConfig

/// Sends a file to a running gantry and prints what it did or would do, `kubectl apply` and
/// `kubectl diff` style.
struct Apply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply a gantry.yaml to a running gantry, live.",
        discussion: """
            The running gantry checks the whole file first: a file with a problem changes nothing, and
            its problems are printed as `gantry validate` prints them (exit 2). Otherwise it prints
            what changed, object by object (+ added, - removed, ~ changed), and what takes effect only
            when gantry restarts (!). Requests in flight finish on the configuration they started with.
            """)

    @Argument(help: "The configuration file.")
    var file: String = "gantry.yaml"

    @Flag(help: "Only print what would change.")
    var dryRun = false

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        let outcome = try await ConfigSender(admin: admin).send(file, dryRun: dryRun)
        switch outcome.result {
        case .applied:
            FileHandleWriter.write((outcome.diff?.text ?? "") + "configuration applied: generation \(outcome.generation)\n", to: 1)
        case .unchanged:
            FileHandleWriter.write("configuration unchanged: generation \(outcome.generation)\n", to: 1)
        case .compared:
            FileHandleWriter.write((outcome.diff?.text ?? "") + "(dry run: nothing changed)\n", to: 1)
        case .rejected:
            throw ExitCode(2)
        }
    }
}

struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what applying a gantry.yaml would change in a running gantry.",
        discussion: """
            Object by object: + added, - removed, ~ changed with each changed key as old → new, and ! for
            keys that take effect only when gantry restarts. Exits 0 without differences, 1 with
            differences, 2 when the file has problems (printed as `gantry validate` prints them), as
            `kubectl diff` does.
            """)

    @Argument(help: "The configuration file.")
    var file: String = "gantry.yaml"

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        let outcome = try await ConfigSender(admin: admin).send(file, dryRun: true)
        guard outcome.result != .rejected else { throw ExitCode(2) }
        let diff = outcome.diff ?? .none
        FileHandleWriter.write(diff.text, to: 1)
        if !diff.isEmpty { throw ExitCode(1) }
    }
}

/// A file, sent to the admin API's `/api/config`.
struct ConfigSender {
    let admin: AdminOptions

    /// Sends `file`; a rejected file's problems are printed to stderr with their count.
    func send(_ file: String, dryRun: Bool) async throws -> ApplyOutcome {
        let path = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            printError("\(file):1:1: (top level): cannot read the file: \(error.localizedDescription)\n1 problem found")
            throw ExitCode(2)
        }
        let body = try JSONEncoder().encode(ApplyRequest(path: path, text: text, dryRun: dryRun))
        // A change waits for new services' pods to be ready before their routes go live.
        let (status, answer) = try await admin.client.request(.POST, "/api/config", body: body, timeout: .seconds(120))
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard status == 200 || status == 422, let outcome = try? decoder.decode(ApplyOutcome.self, from: answer) else {
            let message = (try? JSONDecoder().decode([String: String].self, from: answer))?["error"] ?? "HTTP \(status)"
            printError("gantry: \(message)")
            throw ExitCode(1)
        }
        if outcome.result == .rejected {
            let count = outcome.issues.count == 1 ? "1 problem" : "\(outcome.issues.count) problems"
            printError((outcome.issues + ["\(count) found"]).joined(separator: "\n"))
        }
        return outcome
    }
}
