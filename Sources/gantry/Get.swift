import ArgumentParser
import Foundation
import GantryAdmin
import GantryConfig
import GantryPods

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the pods, services, routes or events of a running gantry.",
        discussion: "Tables like kubectl's; --output json prints what the admin API answered.")

    enum Resource: String, ExpressibleByArgument, CaseIterable {
        case pods, services, routes, events, config
    }

    @Argument(help: "pods, services, routes, events or config.")
    var resource: Resource

    @Option(name: .shortAndLong, help: "table (default) or json.")
    var output = "table"

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        let data = try await admin.send(.GET, "/api/\(resource.rawValue)")
        if output == "json" {
            FileHandleWriter.write(String(decoding: data, as: UTF8.self) + "\n", to: 1)
            return
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        var table: Table
        switch resource {
        case .pods:
            table = Table("NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "IN-FLIGHT", "MEMORY")
            for pod in try decoder.decode([PodStatus].self, from: data) {
                table.rows.append([
                    pod.name, pod.ready ? "1/1" : "0/1", pod.reason, "\(pod.restarts)",
                    age(seconds: -pod.created.timeIntervalSinceNow), pod.address, "\(pod.inFlight)",
                    pod.memoryBytes.map { "\($0 >> 20)Mi" } ?? "-",
                ])
            }
        case .services:
            table = Table("NAME", "CLUSTER-IP", "REPLICAS", "HEALTHY", "ENDPOINTS")
            for service in try decoder.decode([ServiceStatus].self, from: data) {
                // Health-checked targets: healthy/all; without checks every endpoint counts.
                let healthy = service.targets.map { "\($0.filter(\.healthy).count)/\($0.count)" } ?? "-"
                let unhealthy = (service.targets ?? []).filter { !$0.healthy }.map { "\($0.address) (unhealthy)" }
                let shown = service.endpoints + unhealthy
                table.rows.append([
                    service.name, service.clusterIP ?? "None", service.desiredReplicas.map(String.init) ?? "-", healthy,
                    shown.isEmpty ? "<none>" : shown.joined(separator: ","),
                ])
            }
        case .routes:
            table = Table("NAME", "HOST", "PATH", "PATH-TYPE", "METHODS", "SERVICE")
            for route in try decoder.decode([RouteStatus].self, from: data) {
                table.rows.append([
                    route.name, route.host, route.path, route.pathType,
                    route.methods.isEmpty ? "*" : route.methods.joined(separator: ","), route.service,
                ])
            }
        case .config:
            let config = try decoder.decode(ConfigStatus.self, from: data)
            table = Table("GENERATION", "HASH", "APPLIED", "BY", "SOURCE", "RELOADS", "LAST REJECTION")
            let reloads = ["applied", "unchanged", "rejected"].map { "\($0) \(config.reloads[$0] ?? 0)" }.joined(separator: ", ")
            table.rows.append([
                "\(config.generation)", String(config.hash.prefix(12)), age(seconds: -config.appliedAt.timeIntervalSinceNow) + " ago", config.trigger,
                config.source, reloads, config.lastRejection.map { age(seconds: -$0.time.timeIntervalSinceNow) + " ago" } ?? "-",
            ])
            var text = table.rendered + "\n"
            if let rejection = config.lastRejection {
                text += "\nlast rejected (\(rejection.trigger), \(rejection.source)):\n" + rejection.issues.map { "  \($0)\n" }.joined()
            }
            for restart in config.needsRestart {
                text += "\nwaiting for a restart: \(restart.key) \(restart.from) → \(restart.to) (\(restart.reason))"
            }
            FileHandleWriter.write(text + (config.needsRestart.isEmpty ? "" : "\n"), to: 1)
            return
        case .events:
            table = Table("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE")
            for event in try decoder.decode([PodEvent].self, from: data) {
                table.rows.append([
                    age(seconds: -event.time.timeIntervalSinceNow), event.kind.rawValue, event.reason, event.object, event.message,
                ])
            }
        }
        FileHandleWriter.write(table.rendered + "\n", to: 1)
    }
}
