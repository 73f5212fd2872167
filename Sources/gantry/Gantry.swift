import ArgumentParser

@main
struct Gantry: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "gantry",
        abstract: "The production request path on one machine: load balancer, gateway, ingress, services and pods.",
        discussion: """
            A request goes client → load balancer listener → ingress route → service → endpoint, and
            back, under one request ID. Everything is declared in gantry.yaml.

            `gantry up` runs the built-in example (example.com/auth and example.com/app with their pods);
            `gantry up FILE` runs yours, and applies the file again when it changes (or on SIGHUP). While
            it runs, `gantry get pods`, `gantry scale`, `gantry logs`, `gantry rollout restart`,
            `gantry diff` and `gantry apply` talk to its admin API.
            `gantry routes explain` shows where a request would go without sending it.
            """,
        version: version,
        subcommands: [Up.self, Validate.self, Export.self, Diff.self, Apply.self, Routes.self, Get.self, Scale.self, Rollout.self, Logs.self, AutoscalerCommand.self, Load.self, Trace.self, Certs.self, JWTCommand.self, Example.self]
    )
}
