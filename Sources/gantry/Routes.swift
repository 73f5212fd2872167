import ArgumentParser
import Foundation
import GantryConfig
import GantryCore

struct Routes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect the ingress rules.",
        subcommands: [Explain.self]
    )

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show which route, service and policies a request would meet, or why none matched.",
            discussion: """
                Runs the proxy's own matcher on a request you describe, without sending anything:
                  gantry routes explain gantry.yaml --host example.com --path /app/dashboard
                """
        )

        @Argument(help: "The configuration file.")
        var file: String

        @Option(help: "The request's Host header (a port is ignored).")
        var host: String

        @Option(help: "The request target: a path, optionally with a query.")
        var path: String

        @Option(help: "The request's query, e.g. version=2&debug=1 (or give it in --path).")
        var query: String?

        @Option(help: "The request method.")
        var method: String = "GET"

        @Option(name: .customLong("header"), help: ArgumentHelp("A request header, as Name:value (repeatable).", valueName: "K:V"))
        var headers: [String] = []

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() throws {
            let loaded = try ConfigFile.load(file)
            var list = HeaderList()
            for header in headers {
                guard let colon = header.firstIndex(of: ":") else {
                    throw ValidationError("--header \(header): write Name:value")
                }
                let value = header[header.index(after: colon)...].drop(while: { $0 == " " })
                list.pairs.append((String(header[..<colon]), String(value)))
            }
            let snapshot = loaded.snapshot
            let target = query.map { path + (path.contains("?") ? "&" : "?") + $0 } ?? path
            switch snapshot.routes.explain(host: host, target: target, method: method, headers: list) {
            case .failure(let problem):
                printError("the path \(path) is not a valid request target (\(problem)); the proxy would answer 400")
                throw ExitCode(1)
            case .success(let explanation):
                if json {
                    print(try ExplanationJSON(explanation, snapshot: snapshot).encoded())
                } else {
                    print(ExplanationText.render(explanation, snapshot: snapshot))
                }
                if explanation.matched == nil { throw ExitCode(1) }
            }
        }
    }
}

/// `routes explain` as text.
enum ExplanationText {
    static func render(_ explanation: RouteExplanation, snapshot: RuntimeSnapshot) -> String {
        var lines: [String] = []
        lines.append("request: \(explanation.method) \(explanation.host)\(explanation.path)")
        if let rule = explanation.matched {
            let service = snapshot.services[rule.service]
            let settings = snapshot.routeSettings[rule.index]
            lines.append("matched: routes[\(rule.index)] \(rule.name) (\(hostText(rule)) \(rule.path))")
            if let split = rule.split {
                let shares = split.backends.map { "\(snapshot.services[$0.service].name) \(ExplanationText.percent(split.percent(of: $0)))%" }
                lines.append("split: \(shares.joined(separator: ", "))" + (split.sticky.map { ", sticky by \($0)" } ?? ", at random"))
            }
            lines.append("service: \(service.name) (\(service.balancer), endpoints: \(endpointsText(service)))")
            lines.append("policies: none")
            lines.append(
                "timeouts: connect \(service.connectTimeout), response \(settings.responseTimeout); retries: \(settings.retry.retries) on \(settings.retry.retryOn.map(\.rawValue).sorted().joined(separator: ", "))"
            )
        } else {
            lines.append("matched: nothing, the proxy would answer 404")
        }
        lines.append("rules:")
        for step in explanation.steps {
            lines.append("  routes[\(step.rule.index)] \(hostText(step.rule)) \(step.rule.path) → \(reason(step.outcome))")
        }
        return lines.joined(separator: "\n")
    }

    static func percent(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }

    static func hostText(_ rule: RouteRule) -> String {
        rule.host == .any ? "any host" : "host \(rule.host)"
    }

    static func endpointsText(_ service: ServiceSettings) -> String {
        service.staticEndpoints.isEmpty ? "none" : service.staticEndpoints.map(\.description).joined(separator: ", ")
    }

    static func reason(_ outcome: RuleOutcome) -> String {
        switch outcome {
        case .matched: return "matched"
        case .hostMismatch: return "host does not match"
        case .pathMismatch: return "path does not match"
        case .methodMismatch: return "method does not match"
        case .headerMismatch(let header): return "header condition \(header) does not hold"
        case .queryMismatch(let condition): return "query condition \(condition) does not hold"
        case .shadowed: return "not reached: a more specific rule matched first"
        }
    }
}

/// `routes explain --json`.
struct ExplanationJSON: Encodable {
    struct Rule: Encodable {
        let index: Int
        let name: String
        let host: String
        let path: String
        let pathType: String
        let outcome: String
    }

    struct Match: Encodable {
        let route: Int
        let name: String
        let service: String
        let loadBalancing: String
        let endpoints: [String]
        let policies: [String]
    }

    let host: String
    let path: String
    let method: String
    let matched: Match?
    let rules: [Rule]

    init(_ explanation: RouteExplanation, snapshot: RuntimeSnapshot) {
        host = explanation.host
        path = explanation.path
        method = explanation.method
        matched = explanation.matched.map { rule in
            let service = snapshot.services[rule.service]
            return Match(
                route: rule.index, name: rule.name, service: service.name, loadBalancing: service.balancer.description,
                endpoints: service.staticEndpoints.map(\.description), policies: [])
        }
        rules = explanation.steps.map { step in
            Rule(
                index: step.rule.index, name: step.rule.name, host: step.rule.host.description, path: step.rule.path.path,
                pathType: step.rule.path.type.rawValue, outcome: ExplanationText.reason(step.outcome))
        }
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
