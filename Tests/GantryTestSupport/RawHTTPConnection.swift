import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A response as read off the wire.
public struct RawResponse: Sendable {
    public let status: Int
    public let reason: String
    public let version: String
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public func headerValues(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }

    public var text: String { String(decoding: body, as: UTF8.self) }

    public func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw RawHTTPError.malformed("body is not a JSON object: \(text)")
        }
        return object
    }
}

public enum RawHTTPError: Error, CustomStringConvertible {
    case connect(Int32)
    case timeout(String)
    case closed(String)
    case malformed(String)

    public var description: String {
        switch self {
        case .connect(let code): return "connect failed: errno \(code)"
        case .timeout(let what): return "timed out \(what)"
        case .closed(let what): return "connection closed \(what)"
        case .malformed(let what): return "malformed response: \(what)"
        }
    }
}

/// A blocking HTTP/1.1 client on a plain socket, for tests that need to send exactly the bytes
/// they choose (malformed requests, pipelining, half-written bodies) and read exactly what
/// comes back. Blocking calls run on a Dispatch thread, never on the Swift concurrency pool.
public final class RawHTTPConnection: @unchecked Sendable {
    /// -1 once ``reset()`` has closed it.
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let queue = DispatchQueue(label: "raw-http")

    public init(host: String = "127.0.0.1", port: Int) throws {
        // Assigned only once connected: a class whose initializer throws after its properties
        // are set still runs `deinit`, which would close the descriptor a second time, and by
        // then its number may be another test's socket.
        fd = try Self.connect(host: host, port: port)
    }

    private static func connect(host: String, port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(fd)
            throw RawHTTPError.connect(code)
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    public func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw RawHTTPError.closed("while sending (errno \(errno))")
            }
            offset += written
        }
    }

    /// The port this end of the connection is bound to.
    public var localPort: Int { Self.port(of: fd, end: .local) ?? 0 }

    public enum SocketEnd { case local, peer }

    /// The IPv4 port of one end of the TCP socket `fd`; nil when it is not an IPv4 socket.
    public static func port(of fd: Int32, end: SocketEnd) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                end == .local ? getsockname(fd, $0, &length) : getpeername(fd, $0, &length)
            }
        }
        guard result == 0, address.sin_family == sa_family_t(AF_INET) else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Half-closes: the peer reads end-of-file.
    public func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    public func closeNow() {
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Closes abruptly: the peer gets a reset (RST), not an end-of-file, as from a client that
    /// crashed or gave up.
    public func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)
        fd = -1
    }

    /// True once the peer has reset the connection (a socket error: what a peer's kernel answers
    /// to bytes sent to a socket it has closed), waiting until the deadline. An end-of-file alone
    /// is not enough.
    public func waitForReset(timeout: Double = 10) async -> Bool {
        (try? await blocking {
            let deadline = Date().addingTimeInterval(timeout)
            while deadline.timeIntervalSinceNow > 0 {
                // No events asked for: poll reports only errors and hang-ups, not the readable
                // end-of-file that is already there.
                var descriptor = pollfd(fd: self.fd, events: 0, revents: 0)
                let ready = poll(&descriptor, 1, Int32(min(deadline.timeIntervalSinceNow, 1) * 1000) + 1)
                if ready > 0, descriptor.revents & Int16(POLLERR | POLLHUP) != 0 { return true }
            }
            return false
        }) ?? false
    }

    /// Reads one response. `head: true` for the answer to a HEAD request (no body follows).
    public func readResponse(timeout: Double = 10, head: Bool = false) async throws -> RawResponse {
        try await blocking { try self.readResponseBlocking(deadline: Date().addingTimeInterval(timeout), head: head) }
    }

    /// Reads a response head and then discards `limit` bytes of body at most, returning how many
    /// body bytes arrived (for large downloads).
    public func readResponseCountingBody(timeout: Double = 60) async throws -> (RawResponse, Int) {
        try await blocking {
            let deadline = Date().addingTimeInterval(timeout)
            let head = try self.readHeadBlocking(deadline: deadline)
            var total = 0
            try self.readBody(head: head, deadline: deadline, isHead: false) { total += $0.count }
            return (head, total)
        }
    }

    /// Exactly `count` bytes, as they came: for protocols other than HTTP/1 (HTTP/2 frames).
    public func readBytes(_ count: Int, timeout: Double = 10) async throws -> [UInt8] {
        try await blocking {
            var bytes: [UInt8] = []
            try self.readExactly(count, deadline: Date().addingTimeInterval(timeout)) { bytes += $0 }
            return bytes
        }
    }

    /// True once the peer has closed the connection (read returns end-of-file), polling until
    /// the deadline.
    public func waitForClose(timeout: Double = 5) async -> Bool {
        (try? await blocking {
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                do {
                    _ = try self.fill(deadline: deadline)
                } catch RawHTTPError.closed {
                    return true
                } catch {
                    return false
                }
            }
        }) ?? false
    }

    private func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }

    // MARK: Parsing

    private func readResponseBlocking(deadline: Date, head isHead: Bool) throws -> RawResponse {
        let head = try readHeadBlocking(deadline: deadline)
        var body: [UInt8] = []
        try readBody(head: head, deadline: deadline, isHead: isHead) { body.append(contentsOf: $0) }
        return RawResponse(status: head.status, reason: head.reason, version: head.version, headers: head.headers, body: body)
    }

    private func readHeadBlocking(deadline: Date) throws -> RawResponse {
        let terminator: [UInt8] = [13, 10, 13, 10]
        while true {
            if let range = firstRange(of: terminator) {
                let headBytes = Array(buffer[..<range])
                buffer.removeFirst(range + 4)
                let lines = String(decoding: headBytes, as: UTF8.self).components(separatedBy: "\r\n")
                let statusParts = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
                guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
                    throw RawHTTPError.malformed("status line \(lines[0])")
                }
                let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
                    guard let colon = line.firstIndex(of: ":") else { return nil }
                    return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
                }
                return RawResponse(
                    status: status, reason: statusParts.count > 2 ? String(statusParts[2]) : "",
                    version: String(statusParts[0]), headers: headers, body: [])
            }
            if try fill(deadline: deadline) == 0 { throw RawHTTPError.closed("before a response head") }
        }
    }

    private func readBody(head: RawResponse, deadline: Date, isHead: Bool, sink: ([UInt8]) -> Void) throws {
        if isHead || head.status == 204 || head.status == 304 || head.status < 200 { return }
        if head.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            while true {
                let line = try readLine(deadline: deadline)
                guard let size = Int(line.split(separator: ";")[0], radix: 16) else { throw RawHTTPError.malformed("chunk size \(line)") }
                if size == 0 {
                    while try !readLine(deadline: deadline).isEmpty {}
                    return
                }
                try readExactly(size, deadline: deadline, sink: sink)
                _ = try readLine(deadline: deadline)
            }
        } else if let length = head.header("content-length").flatMap(Int.init) {
            try readExactly(length, deadline: deadline, sink: sink)
        } else {
            while true {
                if !buffer.isEmpty {
                    sink(buffer)
                    buffer.removeAll()
                }
                do {
                    if try fill(deadline: deadline) == 0 { return }
                } catch RawHTTPError.closed {
                    return
                }
            }
        }
    }

    private func readLine(deadline: Date) throws -> String {
        while true {
            if let range = firstRange(of: [13, 10]) {
                let line = String(decoding: buffer[..<range], as: UTF8.self)
                buffer.removeFirst(range + 2)
                return line
            }
            if try fill(deadline: deadline) == 0 { throw RawHTTPError.closed("inside a chunked body") }
        }
    }

    private func readExactly(_ count: Int, deadline: Date, sink: ([UInt8]) -> Void) throws {
        var remaining = count
        while remaining > 0 {
            if buffer.isEmpty, try fill(deadline: deadline) == 0 { throw RawHTTPError.closed("with \(remaining) body bytes missing") }
            let take = min(remaining, buffer.count)
            sink(Array(buffer[..<take]))
            buffer.removeFirst(take)
            remaining -= take
        }
    }

    private func firstRange(of pattern: [UInt8]) -> Int? {
        guard buffer.count >= pattern.count else { return nil }
        for start in 0...(buffer.count - pattern.count) where buffer[start] == pattern[0] {
            if Array(buffer[start..<start + pattern.count]) == pattern { return start }
        }
        return nil
    }

    /// Reads what is available; throws `.closed` at end-of-file, `.timeout` at the deadline.
    @discardableResult
    private func fill(deadline: Date) throws -> Int {
        while true {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { throw RawHTTPError.timeout("waiting for data") }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(remaining, 1) * 1000) + 1)
            if ready < 0, errno == EINTR { continue }
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 256 * 1024)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw RawHTTPError.closed("(errno \(errno))")
            }
            if count == 0 { throw RawHTTPError.closed("by the peer") }
            buffer.append(contentsOf: chunk[..<count])
            return count
        }
    }
}
