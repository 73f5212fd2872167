import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#endif

/// The descriptors one gantry hands to the gantry that takes over from it (`gantry up
/// --takeover`), by name: its listening sockets (`listener/http`, `service/app-service`,
/// `dns/udp`, `admin`) and the locks on its loopback address blocks. The new process accepts
/// on the very sockets the old one accepted on, so no connection is refused while they
/// change places, and it holds the same address blocks, so its pods and cluster IPs keep their
/// addresses. NIO has no way to hand out a channel's descriptor, so gantry makes its listening
/// sockets itself (``listeningSocket(named:host:port:kind:backlog:)``) and gives them to NIO
/// bound.
public final class Handover: Sendable {
    public static let shared = Handover()

    public struct Descriptor: Sendable, Equatable {
        public let name: String
        public let descriptor: Int32

        public init(name: String, descriptor: Int32) {
            self.name = name
            self.descriptor = descriptor
        }
    }

    public enum Kind: Sendable {
        case stream, datagram
    }

    private struct State {
        var held: [Int: Descriptor] = [:]
        var inherited: [String: Int32] = [:]
        var nextToken = 0
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Records a descriptor this process holds, to be handed over while it is open; the token
    /// forgets it (``forget(_:)``) when it closes.
    public func hold(_ name: String, _ descriptor: Int32) -> Int {
        state.withLockedValue { state in
            state.nextToken += 1
            state.held[state.nextToken] = Descriptor(name: name, descriptor: descriptor)
            return state.nextToken
        }
    }

    public func forget(_ token: Int) {
        _ = state.withLockedValue { $0.held.removeValue(forKey: token) }
    }

    /// Forgets and closes a socket that never made it into a channel.
    public func discard(_ socket: (descriptor: Int32, token: Int)) {
        forget(socket.token)
        close(socket.descriptor)
    }

    /// What this process would hand over now.
    public var held: [Descriptor] {
        state.withLockedValue { $0.held.values.sorted { $0.name < $1.name } }
    }

    /// The descriptors received from the gantry that handed over.
    public func inherit(_ descriptors: [Descriptor]) {
        state.withLockedValue { state in
            for descriptor in descriptors {
                if let previous = state.inherited.updateValue(descriptor.descriptor, forKey: descriptor.name) { close(previous) }
            }
        }
    }

    /// The inherited descriptor of that name, now the caller's; nil when there is none.
    public func take(_ name: String) -> Int32? {
        state.withLockedValue { $0.inherited.removeValue(forKey: name) }
    }

    /// The address an inherited socket is bound to, left in place for ``take(_:)``.
    public func inheritedAddress(_ name: String) -> (host: String, port: Int)? {
        guard let descriptor = state.withLockedValue({ $0.inherited[name] }) else { return nil }
        return Self.localAddress(of: descriptor)
    }

    /// Closes the inherited descriptors nobody took (listeners the new configuration does not
    /// have) and returns their names.
    @discardableResult
    public func closeUnclaimed() -> [String] {
        let left = state.withLockedValue { state in defer { state.inherited = [:] }; return state.inherited }
        for descriptor in left.values { close(descriptor) }
        return left.keys.sorted()
    }

    /// A socket bound to `host:port` (and listening, for a stream) for `name`, held for handing
    /// over: the inherited one of that name when it is bound there (any port when `port` is 0),
    /// or a new one. Returns it with the token to forget it by once it is closed.
    public func listeningSocket(named name: String, host: String, port: Int, kind: Kind, backlog: Int32 = 4096) throws -> (
        descriptor: Int32, token: Int
    ) {
        if let inherited = take(name) {
            if let bound = Self.localAddress(of: inherited), Self.sameHost(bound.host, host), port == 0 || bound.port == port,
                Self.socketType(of: inherited) == (kind == .stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue))
            {
                return (inherited, hold(name, inherited))
            }
            close(inherited)  // the new configuration moved it
        }
        let descriptor = try Self.bind(host: host, port: port, kind: kind, backlog: backlog)
        return (descriptor, hold(name, descriptor))
    }

    // MARK: Sockets

    /// Sets a listening socket's accept queue to `backlog` again once NIO has it. NIO's
    /// `withBoundSocket` calls `listen` on the socket it is given with its own default backlog,
    /// 128, and its `.backlog` option applies only to sockets NIO binds itself. A burst of new
    /// connections beyond 128 then overflows the queue: the kernel drops their SYNs, and each
    /// waits a second or more for its client to send one again. `listen` on a listening
    /// socket changes only the queue's length.
    public static func listen(_ descriptor: Int32, backlog: Int32) throws {
        guard Glibc.listen(descriptor, backlog) == 0 else { throw SocketError.last("listen") }
    }

    static func bind(host: String, port: Int, kind: Kind, backlog: Int32) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = kind == .stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, "\(port)", &hints, &list)
        guard status == 0, let info = list else {
            throw SocketError(operation: "resolve \(host)", reason: String(cString: gai_strerror(status)), code: 0)
        }
        defer { freeaddrinfo(list) }
        let descriptor = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SocketError.last("socket") }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let error = SocketError.last("bind")
            close(descriptor)
            throw error
        }
        if kind == .stream, Glibc.listen(descriptor, backlog) != 0 {
            let error = SocketError.last("listen")
            close(descriptor)
            throw error
        }
        return descriptor
    }

    static func localAddress(of descriptor: Int32) -> (host: String, port: Int)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) == 0 }
        }
        guard ok else { return nil }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let status = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard status == 0, let port = Int(String(cString: service)) else { return nil }
        return (String(cString: host), port)
    }

    private static func socketType(of descriptor: Int32) -> Int32? {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        return getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0 ? type : nil
    }

    /// `localhost` and `127.0.0.1`, `::` and `0:0::0`: the same once resolved.
    private static func sameHost(_ bound: String, _ wanted: String) -> Bool {
        if bound == wanted { return true }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(wanted, nil, &hints, &list) == 0, let info = list else { return false }
        defer { freeaddrinfo(list) }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else {
            return false
        }
        return String(cString: host) == bound
    }
}

/// A system call on a socket failed: which, on what, and the system's reason.
public struct SocketError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let reason: String
    /// errno, or 0.
    public let code: Int32

    public var description: String { "\(operation): \(reason)" }

    static func last(_ operation: String) -> SocketError {
        let code = errno
        return SocketError(operation: operation, reason: String(cString: strerror(code)).lowercased(), code: code)
    }
}
