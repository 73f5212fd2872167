import GantryCore
import GantryTLS
import NIOCore
import NIOPosix
import NIOSSL
import Subprocess

/// Performs one probe against a pod, as the kubelet does: an HTTP GET whose status must be
/// 200–399, a TCP connect, or a command that must exit 0, each within the probe's timeout.
struct ProbeRunner: Sendable {
    let group: any EventLoopGroup

    func check(_ probe: Probe, host: String, environment: [String: String]) async -> Bool {
        await withTimeout(probe.timeout) {
            switch probe.action {
            case .httpGet(let path, let port, let headers):
                let status = try await httpStatus(host: host, port: port, path: path, headers: headers, timeout: probe.timeout)
                return (200..<400).contains(status)
            case .grpc(let port, let service):
                let status = try await HTTP2Check(group: group).grpcServingStatus(host: host, port: port, service: service, timeout: probe.timeout)
                return status == GRPC.serving
            case .tcpSocket(let port):
                let channel = try await bootstrap(timeout: probe.timeout).connect(host: host, port: port).get()
                try? await channel.close()
                return true
            case .exec(let command):
                return try await exec(command, environment: environment)
            }
        }
    }

    private func bootstrap(timeout: Duration) -> ClientBootstrap {
        ClientBootstrap(group: group).connectTimeout(.milliseconds(Int64(timeout / .milliseconds(1))))
    }

    /// A minimal HTTP/1.1 GET that reads only the status line, like kube-probe: the status code,
    /// 0 for a reply that is not HTTP/1.x. Over TLS when `tls` is set (a load-balancer check of
    /// an HTTPS service).
    func httpStatus(
        host: String, port: Int, path: String, headers: [Probe.HeaderField], timeout: Duration, userAgent: String = "kube-probe/gantry",
        tls: UpstreamTLS? = nil
    ) async throws -> Int {
        let context = try tls.map { try TLSClientContext.shared.context(for: $0) }
        let (channel, handshake) = try await bootstrap(timeout: timeout).connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                var handshake: EventLoopFuture<Void>?
                if let context, let tls {
                    handshake = try channel.pipeline.syncOperations.addTLSClientHandlers(
                        context: context, serverName: tls.serverName(forHost: host), timeout: .nanoseconds(timeout.nanoseconds))
                }
                return (try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel), handshake)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            // The handshake's own failure (an untrusted certificate...) is the reason a check
            // reports: a write that raced it would fail only with "I/O on closed channel".
            try await handshake?.get()
            var request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: \(userAgent)\r\nAccept: */*\r\n"
            for header in headers { request += "\(header.name): \(header.value)\r\n" }
            request += "Connection: close\r\n\r\n"
            try await outbound.write(ByteBuffer(string: request))
            var received = ByteBuffer()
            for try await var chunk in inbound {
                received.writeBuffer(&chunk)
                if let status = Self.statusCode(in: received) { return status }
                if received.readableBytes > 8192 { return 0 }
            }
            return 0
        }
    }

    /// The status code of an HTTP/1.x status line once it is complete.
    static func statusCode(in buffer: ByteBuffer) -> Int? {
        let bytes = buffer.readableBytesView
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: bytes[bytes.startIndex..<end], as: UTF8.self)
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]) else { return 0 }
        return code
    }

    private func exec(_ command: [String], environment: [String: String]) async throws -> Bool {
        var overrides: [Environment.Key: String?] = [:]
        for (name, value) in environment { overrides[Environment.Key(stringLiteral: name)] = value }
        let executable: Executable = command[0] == "gantry" ? .path(.init(PodProcess.currentExecutable)) : .name(command[0])
        let result = try await Subprocess.run(
            executable, arguments: Arguments(Array(command.dropFirst())), environment: .inherit.updating(overrides),
            output: .discarded, error: .discarded)
        return result.terminationStatus.isSuccess
    }

    /// Runs `body`, answering false if it throws or takes longer than `timeout`.
    private func withTimeout(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> Bool) async -> Bool {
        switch await Self.withTimeout(timeout, body) {
        case .success(let passed): return passed
        case .failure, nil: return false
        }
    }

    /// Runs `body`: its result, or nil if it takes longer than `timeout`.
    static func withTimeout<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async throws -> T) async -> Result<T, any Error>? {
        await withTaskGroup(of: Result<T, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await body()) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}
