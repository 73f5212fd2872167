import GantryHTTP

/// The admin API over HTTP/1.1: on loopback, or anywhere with a token (``AdminAPI``).
public struct AdminServer: Sendable {
    let api: AdminAPI

    public init(api: AdminAPI) {
        self.api = api
    }

    /// Serves on `host:port` until `until` returns; `ready` receives the bound port.
    public func run(host: String, port: Int, ready: @escaping @Sendable (Int) -> Void, until: @escaping @Sendable () async -> Void)
        async throws
    {
        let api = self.api
        let server = SimpleHTTPServer { request in
            let answer = await api.handle(method: request.method, path: request.path, body: request.body, authorization: request.header("authorization"))
            var headers = [("Content-Type", answer.contentType)]
            if answer.challenge { headers.append(("WWW-Authenticate", #"Bearer realm="gantry-admin""#)) }
            return SimpleHTTPServer.Response(status: answer.status, headers: headers, body: answer.body)
        }
        try await server.run(host: host, port: port, handover: "admin", ready: ready, until: until)
    }
}
