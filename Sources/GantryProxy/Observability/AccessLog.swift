import Dispatch
import GantryConfig
import GantryCore
import Logging
import NIOCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One request as the access log records it.
struct AccessLogRecord {
    var time: Double  // seconds since 1970
    var requestID: String
    var client: String
    var listener: String
    var method: String
    /// `HTTP/1.1`, `HTTP/1.0` or `HTTP/2`, as the client spoke.
    var protocolName: StaticString
    var host: String
    var path: String
    var route: String?
    var service: String?
    var endpoint: String?
    var status: Int
    var bytesIn: Int
    var bytesOut: Int
    var upstreamMs: Double?
    var totalMs: Double
    var attempts: Int
    /// Why gantry answered itself or cut the response short (`no_route`, `upstream_timeout`…).
    var detail: String?
}

/// Where access-log lines go. Writes happen on a serial queue, off the event loops, so a slow
/// disk or a full pipe never stalls request handling. Lines that cannot be written (a full
/// disk) are dropped, never retried and never held: traffic goes on, the drop is logged once
/// when it starts and once when writing works again, and counted in /metrics
/// (`gantry_access_log_dropped_lines_total`).
public final class AccessLogSink: Sendable {
    private let fd: Int32
    private let ownsDescriptor: Bool
    private let queue = DispatchQueue(label: "gantry.access-log")
    private let logger = Logger(label: "gantry")
    private let dropped = Atomic<Int>(0)
    /// Whether the last write failed; read and written on `queue` only.
    private let failing = Atomic<Bool>(false)

    /// Lines dropped because they could not be written.
    public var droppedLines: Int { dropped.load(ordering: .relaxed) }

    public init(destination: AccessLogSettings.Destination) throws {
        switch destination {
        case .stdout:
            fd = 1
            ownsDescriptor = false
        case .stderr:
            fd = 2
            ownsDescriptor = false
        case .file(let path):
            let opened = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard opened >= 0 else { throw IOError(errnoCode: errno, reason: "open \(path)") }
            fd = opened
            ownsDescriptor = true
        }
    }

    func write(_ bytes: [UInt8]) {
        queue.async { self.writeNow(bytes) }
    }

    private func writeNow(_ bytes: [UInt8]) {
        let failure: Int32? = bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
        if let failure {
            let lines = bytes.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            dropped.add(lines, ordering: .relaxed)
            if !failing.exchange(true, ordering: .relaxed) {
                logger.error(
                    "access log: cannot write, dropping lines until it can",
                    metadata: ["error": "\(String(cString: strerror(failure)))"])
            }
        } else if failing.exchange(false, ordering: .relaxed) {
            logger.notice("access log: writing again", metadata: ["dropped": "\(dropped.load(ordering: .relaxed))"])
        }
    }

    /// Waits until every line handed over so far is written.
    public func sync() {
        queue.sync {}
    }

    deinit {
        if ownsDescriptor { close(fd) }
    }
}

/// Per-event-loop buffer of access-log lines, handed to the sink in batches: when it passes
/// 32 KiB or on the loop's sweep, so a line is never more than ~100 ms late.
final class AccessLogBuffer {
    private let sink: AccessLogSink
    private var bytes: [UInt8] = []
    private var cachedSecond = -1
    private var cachedPrefix: [UInt8] = []

    init(sink: AccessLogSink) {
        self.sink = sink
        bytes.reserveCapacity(64 * 1024)
    }

    func append(_ record: AccessLogRecord) {
        bytes.append(contentsOf: "{\"time\":\"".utf8)
        appendTimestamp(record.time)
        field("requestId", record.requestID)
        field("client", record.client)
        field("listener", record.listener)
        field("method", record.method)
        bytes.append(contentsOf: ",\"protocol\":\"".utf8)
        record.protocolName.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        field("host", record.host)
        field("path", record.path)
        field("route", record.route)
        field("service", record.service)
        field("endpoint", record.endpoint)
        number("status", record.status)
        number("bytesIn", record.bytesIn)
        number("bytesOut", record.bytesOut)
        if let upstream = record.upstreamMs { milliseconds("upstreamMs", upstream) }
        milliseconds("totalMs", record.totalMs)
        number("attempts", record.attempts)
        field("detail", record.detail)
        bytes.append(contentsOf: "}\n".utf8)
        if bytes.count >= 32 * 1024 { flush() }
    }

    func flushIfStale(now: NIODeadline) {
        if !bytes.isEmpty { flush() }
    }

    func flush() {
        guard !bytes.isEmpty else { return }
        sink.write(bytes)
        bytes.removeAll(keepingCapacity: true)
    }

    private func field(_ name: String, _ value: String?) {
        guard let value else { return }
        bytes.append(contentsOf: ",\"\(name)\":\"".utf8)
        JSONText.appendEscaped(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    private func number(_ name: String, _ value: Int) {
        bytes.append(contentsOf: ",\"\(name)\":\(value)".utf8)
    }

    private func milliseconds(_ name: String, _ value: Double) {
        bytes.append(contentsOf: ",\"\(name)\":\(millisecondsText(value))".utf8)
    }

    /// RFC 3339 UTC with milliseconds; the date part is formatted once per second.
    private func appendTimestamp(_ time: Double) {
        let second = Int(time)
        if second != cachedSecond {
            var raw = time_t(second)
            var parts = tm()
            gmtime_r(&raw, &parts)
            func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
            let text = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
                + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            cachedPrefix = Array(text.utf8)
            cachedSecond = second
        }
        bytes.append(contentsOf: cachedPrefix)
        let millis = Int((time - Double(second)) * 1000) % 1000
        bytes.append(UInt8(ascii: "0") + UInt8(millis / 100))
        bytes.append(UInt8(ascii: "0") + UInt8(millis / 10 % 10))
        bytes.append(UInt8(ascii: "0") + UInt8(millis % 10))
        bytes.append(contentsOf: "Z\"".utf8)
    }
}
