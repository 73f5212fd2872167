import Dispatch
import Foundation
import GantryCore
import GantryHandover
import NIOConcurrencyHelpers
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `gantry up --takeover`: a new gantry process takes over from the one running on the same
/// state directory, as HAProxy's and Envoy's hot restarts do, so that gantry itself can be
/// upgraded without dropping a request or restarting a pod.
///
/// The running gantry waits for a successor on a Unix socket (SOCK_SEQPACKET, in Linux's
/// abstract namespace, named after its state directory). The successor asks; the running one
/// hands its pods over (it stops probing and restarting them) and answers with an
/// ``TakeoverOffer`` and, in the same message (SCM_RIGHTS), its listening sockets and address
/// locks (``Handover``). The successor opens its listeners on those very sockets without
/// accepting yet, adopts the pods, starts accepting and says `ready`; only then does the old
/// one stop accepting, finish the requests in flight, and exit without stopping the pods. A
/// successor that goes away before `ready` changes nothing: the old one takes its pods back.
///
/// Written here by hand: no package in reach passes descriptors over a Unix socket.
struct TakeoverOffer: Codable, Sendable {
    /// The gantry handing over.
    let pid: Int32
    /// The names of the descriptors sent with the message, in their order.
    let descriptors: [String]
    /// What ``PodSupervisor/start(takingOver:)`` adopts.
    let pods: Data
}

struct TakeoverError: Error, CustomStringConvertible {
    let description: String
}

enum TakeoverSocket {
    static let request = "takeover "
    static let ready = Array("ready".utf8)
    /// The old gantry's answer to `ready`: it stops serving (`ok`), or it is shutting down and
    /// keeps its pods to stop them (`no`).
    static let accepted = Array("ok".utf8)
    static let declined = Array("no".utf8)

    /// The abstract socket address for a state directory: no file to clean up after a crash,
    /// and no limit on the directory's path length.
    static func address(stateDirectory: String) -> (sockaddr_un, socklen_t) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array("gantry-takeover-\(String(StableHash.hash(stateDirectory), radix: 16))".utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path[0] = 0
            for (index, byte) in name.enumerated() { path[index + 1] = byte }
        }
        return (address, socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count))
    }

    static func listen(stateDirectory: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw error("socket") }
        var (address, length) = address(stateDirectory: stateDirectory)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, Glibc.listen(fd, 4) == 0 else {
            let failure = error("bind")
            close(fd)
            throw failure
        }
        return fd
    }

    static func connect(stateDirectory: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw error("socket") }
        var (address, length) = address(stateDirectory: stateDirectory)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        guard connected == 0 else {
            close(fd)
            throw TakeoverError(description: "no gantry runs on the state directory \(stateDirectory) to take over from")
        }
        return fd
    }

    /// One message, with `descriptors` passed along (SCM_RIGHTS).
    static func send(_ fd: Int32, _ bytes: [UInt8], descriptors: [Int32] = []) throws {
        let header = MemoryLayout<cmsghdr>.stride
        let dataLength = descriptors.count * MemoryLayout<Int32>.size
        // CMSG_SPACE: the header, then the data padded to the alignment of size_t.
        let space = descriptors.isEmpty ? 0 : header + (dataLength + 7) & ~7
        var control = [UInt8](repeating: 0, count: max(space, 1))
        var payload = bytes
        let sent = payload.withUnsafeMutableBytes { payloadBytes in
            control.withUnsafeMutableBytes { controlBytes in
                var vector = iovec(iov_base: payloadBytes.baseAddress, iov_len: payloadBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    if space > 0 {
                        let cmsg = controlBytes.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                        cmsg.pointee.cmsg_len = header + dataLength
                        cmsg.pointee.cmsg_level = SOL_SOCKET
                        cmsg.pointee.cmsg_type = Int32(SCM_RIGHTS)
                        let data = controlBytes.baseAddress!.advanced(by: header).assumingMemoryBound(to: Int32.self)
                        for (index, descriptor) in descriptors.enumerated() { data[index] = descriptor }
                        message.msg_control = controlBytes.baseAddress
                        message.msg_controllen = space
                    }
                    return sendmsg(fd, &message, Int32(MSG_NOSIGNAL))
                }
            }
        }
        guard sent == bytes.count else { throw error("sendmsg") }
    }

    /// One message and the descriptors that came with it; empty when the peer went away.
    static func receive(_ fd: Int32) throws -> (bytes: [UInt8], descriptors: [Int32]) {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let header = MemoryLayout<cmsghdr>.stride
        var control = [UInt8](repeating: 0, count: header + 256 * MemoryLayout<Int32>.size)
        var descriptors: [Int32] = []
        let count = buffer.withUnsafeMutableBytes { bufferBytes in
            control.withUnsafeMutableBytes { controlBytes in
                var vector = iovec(iov_base: bufferBytes.baseAddress, iov_len: bufferBytes.count)
                return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                    var message = msghdr()
                    message.msg_iov = vectorPointer
                    message.msg_iovlen = 1
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                    let count = recvmsg(fd, &message, Int32(MSG_CMSG_CLOEXEC))
                    // One control message at most: the descriptors.
                    if count >= 0, message.msg_controllen >= header {
                        let cmsg = controlBytes.baseAddress!.assumingMemoryBound(to: cmsghdr.self)
                        if cmsg.pointee.cmsg_level == SOL_SOCKET, cmsg.pointee.cmsg_type == Int32(SCM_RIGHTS) {
                            let number = (Int(cmsg.pointee.cmsg_len) - header) / MemoryLayout<Int32>.size
                            let data = controlBytes.baseAddress!.advanced(by: header).assumingMemoryBound(to: Int32.self)
                            descriptors = (0..<number).map { data[$0] }
                        }
                    }
                    return count
                }
            }
        }
        guard count >= 0 else { throw error("recvmsg") }
        return (Array(buffer.prefix(count)), descriptors)
    }

    /// Waits at most `seconds` for each message on `fd`.
    static func setTimeout(_ fd: Int32, seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func error(_ operation: String) -> TakeoverError {
        TakeoverError(description: "\(operation): \(String(cString: strerror(errno)))")
    }
}

/// The successor's side: asks, receives, says ready.
final class TakeoverClient: Sendable {
    private let fd: Int32

    init(stateDirectory: String) throws {
        fd = try TakeoverSocket.connect(stateDirectory: stateDirectory)
        TakeoverSocket.setTimeout(fd, seconds: 30)
    }

    deinit { close(fd) }

    /// The running gantry's pods and descriptors, now this process's to take.
    func request() throws -> (offer: TakeoverOffer, descriptors: [Handover.Descriptor]) {
        try TakeoverSocket.send(fd, Array((TakeoverSocket.request + "\(getpid())").utf8))
        let (bytes, descriptors) = try TakeoverSocket.receive(fd)
        guard !bytes.isEmpty else { throw TakeoverError(description: "the running gantry went away during the takeover") }
        let offer = try JSONDecoder().decode(TakeoverOffer.self, from: Data(bytes))
        guard offer.descriptors.count == descriptors.count else {
            for descriptor in descriptors { close(descriptor) }
            throw TakeoverError(description: "expected \(offer.descriptors.count) descriptors, received \(descriptors.count)")
        }
        return (offer, zip(offer.descriptors, descriptors).map { Handover.Descriptor(name: $0, descriptor: $1) })
    }

    /// Serving now: the old gantry stops accepting and drains. Throws when it declines (it was
    /// shutting down already) or does not answer.
    func ready() throws {
        try TakeoverSocket.send(fd, TakeoverSocket.ready)
        let (answer, _) = try TakeoverSocket.receive(fd)
        guard answer == TakeoverSocket.accepted else {
            throw TakeoverError(description: "the running gantry is shutting down; nothing to take over")
        }
    }
}

/// The running gantry's side: waits for a successor on a thread of its own (the calls block).
final class TakeoverListener: Sendable {
    private enum State {
        case open
        case closed
        /// A successor serves: its PID.
        case handedOver(Int32)
    }

    private let fd: Int32
    /// One decision between a successor's `ready` and this gantry's own shutdown, whichever
    /// comes first: both cannot have the pods.
    private let state = NIOLockedValueBox(State.open)

    /// Binds the state directory's takeover socket; the gantry this one took over from
    /// releases it as it starts draining, so this tries again for a few seconds.
    init(stateDirectory: String) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                fd = try TakeoverSocket.listen(stateDirectory: stateDirectory)
                return
            } catch {
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Serves successors until one takes over. `handOver` gives the pods up and returns what
    /// to send; `takeBack` undoes it when the successor goes away before it is ready;
    /// `handedOver` hears the successor's PID once it serves.
    func serve(
        handOver: @escaping @Sendable () async throws -> Data, takeBack: @escaping @Sendable () async -> Void,
        handedOver: @escaping @Sendable (Int32) -> Void
    ) {
        let fd = self.fd
        let thread = Thread { [self] in
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 {
                    if errno == EINTR { continue }
                    return  // closed
                }
                defer { Glibc.close(connection) }
                TakeoverSocket.setTimeout(connection, seconds: 60)
                // "takeover PID"
                guard let (request, _) = try? TakeoverSocket.receive(connection),
                    let text = String(validating: request, as: UTF8.self), text.hasPrefix(TakeoverSocket.request),
                    let successor = Int32(text.dropFirst(TakeoverSocket.request.count))
                else { continue }
                guard let pods = try? Self.blocking(handOver) else { continue }
                let held = Handover.shared.held
                let offer = TakeoverOffer(pid: getpid(), descriptors: held.map(\.name), pods: pods)
                let sent = (try? JSONEncoder().encode(offer)).map { data in
                    (try? TakeoverSocket.send(connection, Array(data), descriptors: held.map(\.descriptor))) != nil
                } ?? false
                if sent, let (answer, _) = try? TakeoverSocket.receive(connection), answer == TakeoverSocket.ready {
                    let taken = self.state.withLockedValue { state in
                        guard case .open = state else { return false }
                        state = .handedOver(successor)
                        return true
                    }
                    if taken, (try? TakeoverSocket.send(connection, TakeoverSocket.accepted)) != nil {
                        self.stopListening()
                        handedOver(successor)
                        return
                    }
                    if taken { self.state.withLockedValue { $0 = .open } }  // it went away before hearing so
                    try? TakeoverSocket.send(connection, TakeoverSocket.declined)
                }
                _ = try? Self.blocking { await takeBack() }
                if case .closed = self.state.withLockedValue({ $0 }) { return }
            }
        }
        thread.name = "gantry-takeover"
        thread.start()
    }

    /// Stops waiting for successors, as this gantry stops. Returns the PID of the successor
    /// that took over, if one did; otherwise none can from now on.
    func close() -> Int32? {
        let successor: Int32? = state.withLockedValue { state in
            if case .handedOver(let pid) = state { return pid }
            state = .closed
            return nil
        }
        if successor == nil { stopListening() }
        return successor
    }

    private let listening = NIOLockedValueBox(true)

    private func stopListening() {
        guard listening.withLockedValue({ open in defer { open = false }; return open }) else { return }
        shutdown(fd, Int32(SHUT_RDWR))  // wakes the thread blocked in accept
        Glibc.close(fd)
    }

    private static func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let result = NIOLockedValueBox<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let outcome: Result<T, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            result.withLockedValue { $0 = outcome }
            done.signal()
        }
        done.wait()
        return try result.withLockedValue { $0! }.get()
    }
}

/// SIGUSR2, as HAProxy's and Envoy's hot restarts take it: the running gantry starts its
/// successor itself, the same binary path (a new binary, after an upgrade) with the same
/// arguments and `--takeover`, in the same working directory and with the same output.
enum TakeoverSignal {
    static func startSuccessors() async {
        // Resolved now, while the path still names this process's binary.
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var arguments = CommandLine.arguments
        arguments[0] = executable
        if !arguments.contains("--takeover") { arguments.append("--takeover") }
        for await _ in await UnixSignalsSequence(trapping: .sigusr2) {
            guard let pid = spawn(arguments) else {
                printError("gantry: SIGUSR2: cannot start \(executable): \(String(cString: strerror(errno)))")
                continue
            }
            printError("gantry: SIGUSR2: started process \(pid) to take over")
            // Reaped when it ends (a successor that could not take over exits at once).
            Thread.detachNewThread {
                var status: Int32 = 0
                waitpid(pid, &status, 0)
            }
        }
    }

    private static func spawn(_ arguments: [String]) -> pid_t? {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        // Signals as a new process has them: this one ignores or blocks the ones it traps.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let status = posix_spawn(&pid, arguments[0], nil, &attributes, argv, environ)
        guard status == 0 else {
            errno = status
            return nil
        }
        return pid
    }
}
