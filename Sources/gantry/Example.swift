import ArgumentParser
import GantryExamples
import GantryHTTP
import NIOPosix

struct Example: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one of the example programs that ship with gantry.",
        subcommands: [AuthServiceCommand.self, AppServiceCommand.self, Echo.self, Config.self]
    )

    struct Echo: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An upstream that answers with the request it received, as JSON.",
            discussion: """
                Answers with the method, path, raw query, headers (in order, with duplicates) and body.
                Request headers make it misbehave on purpose: X-Echo-Status: 503, X-Echo-Delay: 250ms,
                X-Echo-Bytes: N (stream N bytes; X-Echo-Chunked: 1 for chunked), X-Echo-Close: 1 (close
                without answering), X-Echo-Header: 'Name: value'.
                """
        )

        @Option(help: "Address to listen on. Default: $POD_IP, else 127.0.0.1.")
        var host: String?

        @Option(help: "Port to listen on; 0 picks a free one. Default: $PORT, else 9001.")
        var port: Int?

        @Option(help: "A name reported in X-Echo-Server and the JSON, to tell instances apart.")
        var name: String?

        func run() async throws {
            let port = self.port ?? Int(ProcessEnvironment.value("PORT") ?? "") ?? 9001
            let host = self.host ?? ProcessEnvironment.value("POD_IP") ?? "127.0.0.1"
            let server = EchoServer(name: name ?? ProcessEnvironment.value("POD_NAME") ?? "echo-\(port)")
            let channel = try await server.start(host: host, port: port, group: MultiThreadedEventLoopGroup.singleton)
            FileHandleWriter.write("echo listening on http://\(host):\(channel.localAddress?.port ?? port)\n", to: 1)
            try await SignalWaiter.wait(for: [SIGINT, SIGTERM])
            try? await channel.close()
        }
    }

    struct Config: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config", abstract: "Print the built-in example's gantry.yaml (what `gantry up` runs without a file).")

        func run() {
            FileHandleWriter.write(BuiltInExample.yaml, to: 1)
        }
    }

    struct AuthServiceCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "auth-service",
            abstract: "The example's auth service: POST /auth/login issues ES256 JWTs; /auth/.well-known/jwks.json.",
            discussion: "Listens on $POD_IP:$PORT (127.0.0.1:8080 by default). Data in $DATABASE_PATH (SQLite).")

        func run() async throws {
            let service = try await AuthService.open()
            try await ExamplePod.serve(name: "auth-service") { await service.handle($0) }
            try await service.close()
        }
    }

    struct AppServiceCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "app-service",
            abstract: "The example's application: GET /app/dashboard for the user in X-User-ID; /app/work?cpu=50ms; a WebSocket at /app/live.",
            discussion: "Listens on $POD_IP:$PORT (127.0.0.1:8080 by default). Data in $DATABASE_PATH (SQLite).")

        func run() async throws {
            let service = try await AppService.open()
            try await ExamplePod.serve(
                name: "app-service", webSockets: ["/app/live": { await service.live($0, socket: $1, messages: $2) }]
            ) { await service.handle($0) }
            try await service.close()
        }
    }
}

/// How the example pods run: on `$POD_IP:$PORT`, until SIGTERM or SIGINT, then drain and exit 0.
enum ExamplePod {
    static func serve(
        name: String, webSockets: [String: SimpleHTTPServer.WebSocketHandler] = [:], handler: @escaping SimpleHTTPServer.Handler
    ) async throws {
        let host = ProcessEnvironment.value("POD_IP") ?? "127.0.0.1"
        let port = Int(ProcessEnvironment.value("PORT") ?? "") ?? 8080
        try await SimpleHTTPServer(handler: handler, webSockets: webSockets).run(
            host: host, port: port,
            ready: { bound in FileHandleWriter.write("\(name) listening on http://\(host):\(bound)\n", to: 1) },
            until: { try? await SignalWaiter.wait(for: [SIGINT, SIGTERM]) })
        FileHandleWriter.write("\(name) stopped\n", to: 1)
    }
}
