import ArgumentParser
import Foundation
import GantryAdmin
import GantryConfig
import GantryCore
import GantryPods
import GantryProxy
import NIOCore
import NIOPosix

struct JWTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jwt",
        abstract: "Check JSON Web Tokens against a jwt policy.",
        subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Whether a jwt policy accepts a token, and exactly why not.",
            discussion: """
                Runs the proxy's own verifier on the token and prints every check: the format, alg,
                crit, kid, the signature, and each claim the policy reads (exp, nbf, iat, iss, aud,
                required claims). Exit code 0 when the policy accepts the token, 1 when it refuses it,
                2 when the file or the keys cannot be read.

                Keys are the policy's own: its key files, and the key set it fetches. A key set from a
                URL is fetched from there; one from a service in gantry is fetched from the service's
                endpoints in the file, or, for a service with pods, from those of a running gantry
                (--admin). --jwks FILE|URL uses that key set instead of the fetched one.
                  gantry jwt check gantry.yaml --policy user-jwt "$TOKEN"
                """
        )

        @Argument(help: "The configuration file.")
        var file: String

        @Option(help: "The jwt policy's name.")
        var policy: String

        @Option(help: "Check as of this time, in seconds since 1970 (default: now).")
        var now: Double?

        @Option(help: "A key set (JWKS) file or http(s):// URL to use instead of the one the policy fetches.")
        var jwks: String?

        @Flag(help: "Print JSON instead of text.")
        var json = false

        @OptionGroup var admin: AdminOptions

        @Argument(help: "The token (compact JWS). A leading \"Bearer \" is ignored.")
        var token: String

        func run() async throws {
            let snapshot = try ConfigFile.load(file).snapshot  // problems printed as `validate` prints them, exit 2
            guard let compiled = snapshot.policies.first(where: { $0.name == policy }) else {
                let names = snapshot.policies.map(\.name)
                printError("gantry: no policy \"\(policy)\" in \(file)" + Suggestion.hint(for: policy, among: names))
                throw ExitCode(2)
            }
            guard let jwt = compiled.policy as? JWTPolicy else {
                printError("gantry: policy \"\(policy)\" is a \(compiled.kind) policy, not a jwt policy")
                throw ExitCode(2)
            }
            let keys = try await jwt.staticKeys + fetchedKeys(jwt, snapshot: snapshot)
            var text = Substring(token.trimmingCharacters(in: .whitespacesAndNewlines))
            if text.lowercased().hasPrefix("bearer ") { text = text.dropFirst(7) }
            let report = JWTReport(text, keys: keys, rules: jwt.rules, now: now.map(Date.init(timeIntervalSince1970:)) ?? Date())
            print(json ? try JWTReportJSON(report, policy: policy).encoded() : JWTReportText.render(report, policy: policy))
            if !report.accepted { throw ExitCode(1) }
        }

        /// The key set the policy would fetch, or the one `--jwks` names; none for a policy with
        /// key files only.
        private func fetchedKeys(_ policy: JWTPolicy, snapshot: RuntimeSnapshot) async throws -> [JWTKey] {
            if let jwks {
                let data: Data
                if jwks.hasPrefix("http://") || jwks.hasPrefix("https://") {
                    let environment = CommandPolicyEnvironment(snapshot: snapshot, running: [:])
                    guard let target = RemoteSource.url(jwks).target(in: environment) else { throw ValidationError("--jwks \(jwks): not a URL") }
                    data = try await environment.send(OutgoingRequest(method: .GET, to: target)).get().body
                } else {
                    guard let contents = FileManager.default.contents(atPath: jwks) else { throw ValidationError("--jwks \(jwks): cannot read the file") }
                    data = contents
                }
                do { return try JWKSet.keys(from: data) } catch {
                    printError("gantry: --jwks \(jwks): \(error)")
                    throw ExitCode(2)
                }
            }
            guard let source = policy.keySource else { return [] }
            var running: [String: [EndpointAddress]] = [:]
            if case .service(let name, _) = source, snapshot.services.first(where: { $0.name == name })?.staticEndpoints.isEmpty ?? true {
                // A service with pods has endpoints only while gantry runs: ask it for them.
                let services = (try? await admin.client.request(.GET, "/api/services", body: nil)).flatMap {
                    try? JSONDecoder().decode([ServiceStatus].self, from: $0.body)
                }
                for service in services ?? [] { running[service.name] = service.endpoints.compactMap(EndpointAddress.init(parsing:)) }
            }
            do {
                return try await policy.fetchKeys(CommandPolicyEnvironment(snapshot: snapshot, running: running)).get()
            } catch {
                printError(
                    "gantry: cannot fetch policy \"\(policy.name)\"'s key set from \(source): \(error). "
                        + "Start gantry (for a service with pods), or pass --jwks FILE|URL.")
                throw ExitCode(2)
            }
        }
    }
}

/// What a policy may ask of the world from the command line: a service's endpoints from the
/// file or a running gantry, and plain HTTP requests.
private struct CommandPolicyEnvironment: PolicyEnvironment {
    let snapshot: RuntimeSnapshot
    let running: [String: [EndpointAddress]]
    var eventLoop: any EventLoop { MultiThreadedEventLoopGroup.singleton.any() }

    func endpoint(ofService name: String) -> EndpointAddress? {
        let endpoints = snapshot.services.first { $0.name == name }?.staticEndpoints ?? []
        return endpoints.first ?? running[name]?.first
    }

    func upstreamTLS(ofService name: String) -> UpstreamTLS? {
        snapshot.services.first { $0.name == name }?.tls
    }

    func send(_ request: OutgoingRequest) -> EventLoopFuture<OutgoingResponse> {
        request.send(on: eventLoop)
    }

    func redis(host: String, port: Int, command: [String], timeout: Duration) -> EventLoopFuture<RedisValue> {
        eventLoop.makeFailedFuture(CancellationError())
    }

    func record(_ event: PolicyEvent) {}
}

/// `jwt check` as text: a line per check, then the verdict.
enum JWTReportText {
    static func render(_ report: JWTReport, policy: String) -> String {
        var lines = report.checks.map { check in
            let mark = check.passed ? "ok  " : "FAIL"
            let detail = check.detail.isEmpty ? "" : " \(check.detail)"
            return "\(mark) \(check.name)\(detail)" + (check.failure.map { ": \($0)" } ?? "")
        }
        if let failure = report.failure {
            lines.append("refused by policy \(policy): \(failure) (the proxy answers 401)")
        } else {
            lines.append("accepted by policy \(policy)")
        }
        return lines.joined(separator: "\n")
    }
}

/// `jwt check --json`.
struct JWTReportJSON: Encodable {
    struct Check: Encodable {
        let name: String
        let passed: Bool
        let detail: String
        let error: String?
    }

    let policy: String
    let accepted: Bool
    let error: String?
    let checks: [Check]
    let header: [String: JSONValue]?
    let claims: [String: JSONValue]?

    init(_ report: JWTReport, policy: String) {
        self.policy = policy
        accepted = report.accepted
        error = report.failure?.description
        checks = report.checks.map { Check(name: $0.name, passed: $0.passed, detail: $0.detail, error: $0.failure?.description) }
        header = report.header
        claims = report.claims
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
