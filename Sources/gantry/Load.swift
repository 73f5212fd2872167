import ArgumentParser
import Foundation
import GantryConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send steady HTTP load to a URL and show rate, latency and statuses as it goes.",
        discussion: """
            Keep-alive connections send requests back to back, or paced to --rps in total. Every second a
            line shows the rate, p50 and p99 latency and the status counts; a summary follows at the end.
            Meant for watching gantry work (the autoscaler, rate limits), not for benchmarks.
            """)

    @Argument(help: "e.g. http://127.0.0.1:8080/app/work?cpu=20ms")
    var url: String

    @Option(help: "Requests per second in total; 0 sends as fast as the connections allow.")
    var rps: Double = 0

    @Option(help: "Keep-alive connections.")
    var connections = 8

    @Option(help: "How long, e.g. 30s or 2m.")
    var duration = "30s"

    @Option(name: .customLong("header"), help: "A request header, 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "The request method.")
    var method = "GET"

    @Option(help: "A request body.")
    var body: String?

    func run() async throws {
        guard let parsed = URLComponents(string: url), parsed.scheme == "http", let host = parsed.host else {
            throw ValidationError("the URL must be http://HOST[:PORT]/PATH")
        }
        guard let length = DurationSpec.parse(duration)?.duration else { throw ValidationError("--duration: write e.g. 30s or 2m") }
        guard connections >= 1, rps >= 0 else { throw ValidationError("--connections must be at least 1 and --rps not negative") }
        var head = HTTPRequestHead(
            version: .http1_1, method: HTTPMethod(rawValue: method.uppercased()),
            uri: (parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath) + (parsed.percentEncodedQuery.map { "?\($0)" } ?? ""))
        for header in headers {
            guard let colon = header.firstIndex(of: ":") else { throw ValidationError("--header: write 'Name: value'") }
            head.headers.add(name: String(header[..<colon]), value: header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        if !head.headers.contains(name: "host") { head.headers.add(name: "host", value: parsed.port.map { "\(host):\($0)" } ?? host) }
        head.headers.add(name: "content-length", value: "\(body?.utf8.count ?? 0)")

        let tally = LoadTally()
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + length
        let interval: Duration? = rps > 0 ? .seconds(Double(connections) / rps) : nil
        let request = head
        let payload = body
        let port = parsed.port ?? 80
        let reporter = Task {
            var second = 0
            while clock.now < end {
                try? await Task.sleep(until: start + .seconds(second + 1), clock: clock)
                second += 1
                FileHandleWriter.write(tally.line(label: "\(second)s", window: .seconds(1), resetWindow: true) + "\n", to: 2)
            }
        }
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<connections {
                group.addTask {
                    // Spread the connections' first requests over one interval.
                    let offset = interval.map { $0 * (Double(index) / Double(connections)) } ?? .zero
                    await LoadConnection(host: host, port: port, head: request, body: payload, tally: tally)
                        .run(until: end, interval: interval, firstAt: start + offset)
                }
            }
        }
        reporter.cancel()
        FileHandleWriter.write("total: " + tally.line(label: "\(duration)", window: length, resetWindow: false, total: true) + "\n", to: 1)
    }
}

/// One keep-alive connection sending requests in a loop; reconnects after an error.
struct LoadConnection: Sendable {
    let host: String
    let port: Int
    let head: HTTPRequestHead
    let body: String?
    let tally: LoadTally

    func run(until end: ContinuousClock.Instant, interval: Duration?, firstAt: ContinuousClock.Instant) async {
        let clock = ContinuousClock()
        var next = firstAt
        while clock.now < end {
            do {
                let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.seconds(2))
                    .connect(host: host, port: port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHTTPClientHandlers()
                            return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                        }
                    }
                try await channel.executeThenClose { inbound, outbound in
                    var responses = inbound.makeAsyncIterator()
                    while clock.now < end {
                        if let interval {
                            if next > clock.now { try await Task.sleep(until: next, clock: clock) }
                            next = next + interval
                        }
                        let sent = clock.now
                        try await outbound.write(.head(head))
                        if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body)))) }
                        try await outbound.write(.end(nil))
                        var status = 0
                        var closes = false
                        loop: while let part = try await responses.next() {
                            switch part {
                            case .head(let response):
                                status = Int(response.status.code)
                                closes = !response.isKeepAlive
                            case .body: break
                            case .end: break loop
                            }
                        }
                        guard status > 0 else { throw ChannelError.inputClosed }
                        tally.record(status: status, latency: clock.now - sent)
                        if closes { return }
                    }
                }
            } catch {
                tally.recordError()
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}

/// Latencies and statuses, for the window since the last report and for the whole run.
final class LoadTally: Sendable {
    private struct Counts {
        var latencies: [Duration] = []
        var statuses: [Int: Int] = [:]
        var errors = 0
    }

    private let state = NIOLockedValueBox<(window: Counts, total: Counts)>((Counts(), Counts()))

    func record(status: Int, latency: Duration) {
        state.withLockedValue { state in
            state.window.latencies.append(latency)
            state.window.statuses[status, default: 0] += 1
            state.total.latencies.append(latency)
            state.total.statuses[status, default: 0] += 1
        }
    }

    func recordError() {
        state.withLockedValue { state in
            state.window.errors += 1
            state.total.errors += 1
        }
    }

    /// e.g. `12s  98.0 req/s  p50 4.1ms  p99 12.3ms  200:490  429:3  errors:0`.
    func line(label: String, window: Duration, resetWindow: Bool, total: Bool = false) -> String {
        let counts = state.withLockedValue { state in
            let counts = total ? state.total : state.window
            if resetWindow { state.window = Counts() }
            return counts
        }
        let sorted = counts.latencies.sorted()
        func percentile(_ p: Double) -> String {
            guard !sorted.isEmpty else { return "-" }
            let value = sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
            return String(format: "%.1fms", Double(value.components.attoseconds) / 1e15 + Double(value.components.seconds) * 1000)
        }
        let seconds = Double(window.components.seconds) + Double(window.components.attoseconds) / 1e18
        let rate = Double(sorted.count) / max(seconds, 0.001)
        let statuses = counts.statuses.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: "  ")
        var text = "\(label)  \(String(format: "%.1f", rate)) req/s  p50 \(percentile(0.5))  p99 \(percentile(0.99))"
        if total { text += "  max \(percentile(1.0))  requests \(sorted.count)" }
        return text + "  \(statuses.isEmpty ? "" : statuses + "  ")errors:\(counts.errors)"
    }
}
