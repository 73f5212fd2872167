import ArgumentParser
import Foundation
import GantryCore
import GantryDNS
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

struct Trace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one request and print the path it took, hop by hop.",
        discussion: """
            The DNS answer (from gantry's DNS server), the connection and TLS handshake, then what
            gantry reports in Server-Timing: the gateway's time and the route and policies it
            applied, the service, the endpoint (and its pod, from the admin API), the upstream's
            time and the total. The request asks for tracing with a sampled traceparent; gantry
            answers with timings only when the file has tracing: {serverTiming: true}.

              gantry trace https://example.com:8443/app/dashboard -H "Authorization: Bearer $TOKEN"
            """
    )

    @Argument(help: "http:// or https:// URL.")
    var url: String

    @Option(name: [.customShort("H"), .long], help: "A request header, 'Name: value' (repeatable).")
    var header: [String] = []

    @Option(name: [.customShort("X"), .long], help: "The request method.")
    var method: String = "GET"

    @Option(help: "gantry's DNS server, host:port; 'system' for the system resolver.")
    var dns: String = "127.0.0.1:5353"

    @Option(help: "A CA certificate (PEM) to trust for https; by default gantry's local CA in .gantry/tls/ca.pem if it exists.")
    var cacert: String?

    @OptionGroup var admin: AdminOptions

    func run() async throws {
        guard let target = URLComponents(string: url), let scheme = target.scheme, ["http", "https"].contains(scheme), let host = target.host
        else { throw ValidationError("\(url) is not an http:// or https:// URL") }
        let port = target.port ?? (scheme == "https" ? 443 : 80)
        let path = (target.percentEncodedPath.isEmpty ? "/" : target.percentEncodedPath) + (target.percentEncodedQuery.map { "?" + $0 } ?? "")
        let clock = ContinuousClock()
        let begin = clock.now

        let address = try resolve(host)
        var random = SystemRandomNumberGenerator()
        let traceparent = TraceContext.start(using: &random, sampled: true).header
        var headers = HTTPHeaders()
        headers.add(name: "host", value: target.port.map { "\(host):\($0)" } ?? host)
        headers.add(name: "user-agent", value: "gantry-trace")
        headers.add(name: "traceparent", value: traceparent)
        headers.add(name: "x-gantry-trace", value: "1")
        for line in header {
            guard let colon = line.firstIndex(of: ":") else { throw ValidationError("header \"\(line)\" is not 'Name: value'") }
            headers.replaceOrAdd(name: String(line[..<colon]), value: String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        let tls = try scheme == "https" ? tlsContext() : nil
        let result = try await TraceExchange.run(
            address: address, port: port, serverName: host, tls: tls,
            head: HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method.uppercased()), uri: path, headers: headers))
        let total = clock.now - begin

        print(row("connect", "\(address):\(port)", result.connect))
        if let version = result.tlsVersion { print(row("TLS", "\(Self.name(of: version)) with SNI \(host)", result.handshake)) }
        print(row("request", "\(method.uppercased()) \(path)  traceparent \(traceparent)", Optional<Duration>.none))
        let timing = ServerTimingEntries(result.headers.first(name: "server-timing") ?? "")
        if timing.isEmpty {
            print("  (no Server-Timing: set tracing: {serverTiming: true} in the file to see inside gantry)")
        } else {
            let policies = timing.description("policies").map { $0.isEmpty ? "none" : $0.split(separator: " ").joined(separator: " → ") } ?? "-"
            if let route = timing.description("route") {
                print(row("gateway", "route \(route) · policies \(policies): passed", milliseconds: timing.milliseconds("gateway")))
            } else {
                print(row("gateway", "answered here: \(timing.description("gateway") ?? "-")", milliseconds: timing.milliseconds("gateway")))
            }
            if let service = timing.description("service") {
                let endpoint = timing.description("endpoint") ?? "-"
                let pod = await podName(at: endpoint).map { " (pod \($0))" } ?? ""
                print(row("service", "\(service) → \(endpoint)\(pod), \(timing.description("connect") ?? "")", milliseconds: timing.milliseconds("connect")))
                print(row("upstream", "response head from the endpoint", milliseconds: timing.milliseconds("upstream")))
            }
            if let trace = timing.description("trace") { print(row("trace", trace, Optional<Duration>.none)) }
            if let inside = timing.milliseconds("total") { print(row("gantry", "total inside gantry", milliseconds: inside)) }
        }
        print(row("response", "\(result.status) · \(result.bodyBytes) bytes", result.response))
        print(row("total", "as the client saw it", total))
    }

    private func row(_ stage: String, _ what: String, _ duration: Duration?) -> String {
        let padded = stage.padding(toLength: 9, withPad: " ", startingAt: 0)
        return "  \(padded) " + (duration.map { Self.format($0).padding(toLength: 11, withPad: " ", startingAt: 0) } ?? String(repeating: " ", count: 11)) + what
    }

    private func row(_ stage: String, _ what: String, milliseconds: Double?) -> String {
        row(stage, what, milliseconds.map { Duration.nanoseconds(Int64($0 * 1_000_000)) })
    }

    /// `tlsv13` → `TLS 1.3`.
    static func name(of version: String) -> String {
        guard version.hasPrefix("tlsv"), version.count == 6 else { return version }
        return "TLS \(version.dropFirst(4).first!).\(version.last!)"
    }

    static func format(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.3f ms", ms)
    }

    /// The host's IPv4 address: from gantry's DNS server (printed), or the system's resolver.
    private func resolve(_ host: String) throws -> String {
        if IPv4Address(host) != nil { return host }
        if dns != "system", let colon = dns.lastIndex(of: ":"), let port = Int(dns[dns.index(after: colon)...]) {
            let server = String(dns[..<colon])
            let started = ContinuousClock.now
            if let answer = try? DNSQuery.a(host, server: server, port: port) {
                let flags = answer.authoritative ? "authoritative" : "not authoritative"
                if let address = answer.addresses.first {
                    print(row("DNS", "\(host) → \(address) from \(dns) (\(flags)\(answer.chain.isEmpty ? "" : ", via " + answer.chain.joined(separator: " → ")))", ContinuousClock.now - started))
                    return address
                }
                print(row("DNS", "\(host): \(answer.rcode) from \(dns); trying the system resolver", ContinuousClock.now - started))
            } else {
                print(row("DNS", "no answer from \(dns); trying the system resolver", Optional<Duration>.none))
            }
        }
        let address = try SocketAddress.makeAddressResolvingHost(host, port: 0)
        guard let ip = address.ipAddress else { throw ValidationError("cannot resolve \(host)") }
        print(row("DNS", "\(host) → \(ip) (system resolver)", Optional<Duration>.none))
        return ip
    }

    private func tlsContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = ["http/1.1"]
        let local = FileManager.default.currentDirectoryPath + "/.gantry/tls/ca.pem"
        if let path = cacert ?? (FileManager.default.fileExists(atPath: local) ? local : nil) {
            configuration.trustRoots = .file(path)
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The pod behind an endpoint address, from the admin API; nil when it is not a pod.
    private func podName(at endpoint: String) async -> String? {
        struct Pod: Decodable {
            let name: String
            let address: String
        }
        guard let pods = try? await admin.get("/api/pods", as: [Pod].self) else { return nil }
        return pods.first { $0.address == endpoint }?.name
    }
}

/// `Server-Timing` entries: `name;dur=1.2;desc="text", …`.
struct ServerTimingEntries {
    private var entries: [String: (duration: Double?, description: String?)] = [:]

    init(_ header: String) {
        for entry in Self.split(header, on: ",") {
            let parameters = Self.split(entry, on: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = parameters.first, !name.isEmpty else { continue }
            var value: (duration: Double?, description: String?) = (nil, nil)
            for parameter in parameters.dropFirst() {
                if parameter.hasPrefix("dur=") { value.duration = Double(parameter.dropFirst(4)) }
                if parameter.hasPrefix("desc=") { value.description = Self.unquote(String(parameter.dropFirst(5))) }
            }
            entries[name] = value
        }
    }

    var isEmpty: Bool { entries.isEmpty }
    func milliseconds(_ name: String) -> Double? { entries[name]?.duration }
    func description(_ name: String) -> String? { entries[name]?.description }

    /// Splits outside quoted strings.
    private static func split(_ text: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { quoted.toggle() }
            if character == separator, !quoted { parts.append(current); current = "" } else { current.append(character) }
        }
        parts.append(current)
        return parts
    }

    private static func unquote(_ text: String) -> String {
        guard text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 else { return text }
        return String(text.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\\\", with: "\\")
    }
}
