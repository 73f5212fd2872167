import ArgumentParser
import GantryExamples
import NIOPosix

struct Example: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one of the example programs that ship with gantry.",
        subcommands: [Echo.self]
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

        @Option(help: "Address to listen on.")
        var host = "127.0.0.1"

        @Option(help: "Port to listen on; 0 picks a free one. Default: $PORT, else 9001.")
        var port: Int?

        @Option(help: "A name reported in X-Echo-Server and the JSON, to tell instances apart.")
        var name: String?

        func run() async throws {
            let port = self.port ?? Int(ProcessEnvironment.value("PORT") ?? "") ?? 9001
            let server = EchoServer(name: name ?? ProcessEnvironment.value("POD_NAME") ?? "echo-\(port)")
            let channel = try await server.start(host: host, port: port, group: MultiThreadedEventLoopGroup.singleton)
            FileHandleWriter.write("echo listening on http://\(host):\(channel.localAddress?.port ?? port)\n", to: 1)
            try await SignalWaiter.wait(for: [SIGINT, SIGTERM])
            try? await channel.close()
        }
    }
}
