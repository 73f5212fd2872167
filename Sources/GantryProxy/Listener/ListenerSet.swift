import GantryConfig
import GantryHandover
import GantryTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The data plane's listening sockets, by name: the file's listeners and the services' cluster
/// IPs. A listener is bound once and then changed in place: each accepted connection reads its
/// listener's settings and certificates as they are when it is accepted, so a change reaches
/// new connections without the socket ever closing. Closing a listener stops accepting; the
/// data plane then drains the connections it had accepted.
final class ListenerSet: Sendable {
    /// What a listener's next connection is configured with.
    fileprivate final class Configuration: Sendable {
        let current: NIOLockedValueBox<(settings: ListenerSettings, tls: TLSServerContext?)>
        init(_ settings: ListenerSettings, _ tls: TLSServerContext?) { current = NIOLockedValueBox((settings, tls)) }
    }

    /// One bound listener.
    fileprivate struct Entry: Sendable {
        let channel: any Channel
        let configuration: Configuration
        var current: (settings: ListenerSettings, tls: TLSServerContext?) { configuration.current.withLockedValue { $0 } }
    }

    private static let receiveBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536)
    /// Connections the kernel completes and holds while gantry is busy, as nginx's and
    /// HAProxy's listeners do (Linux caps it at `net.core.somaxconn`, 4096 by default).
    private static let backlog: Int32 = 4096
    /// Connections accepted each time the loop finds the listener ready: HAProxy's
    /// `tune.maxaccept`. NIO's default, 4, lets a loop busy with its open connections accept
    /// new ones so slowly that 1,000 clients arriving at once wait up to 2 s for their first
    /// answer.
    private static let acceptsPerWakeUp: UInt = 64

    private let group: any EventLoopGroup
    private let logger: Logger
    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    /// Whether listeners accept as soon as they are opened; held back while a gantry taking
    /// over gets ready (the one it takes over from accepts on the same sockets meanwhile).
    private let accepting = NIOLockedValueBox(true)

    init(group: any EventLoopGroup, logger: Logger) {
        self.group = group
        self.logger = logger
    }

    var names: Set<String> { entries.withLockedValue { Set($0.keys) } }

    func settings(of name: String) -> ListenerSettings? {
        entries.withLockedValue { $0[name]?.current.settings }
    }

    /// A bound socket not yet in the set: what a change binds first, so that it can be undone
    /// whole when one of its listeners cannot bind.
    struct Prepared: Sendable {
        fileprivate let entry: Entry
        let settings: ListenerSettings
        var bound: BoundListener {
            BoundListener(name: settings.name, host: settings.address, port: entry.channel.localAddress?.port ?? settings.port, scheme: settings.scheme)
        }
    }

    /// Binds a listener and adds it to the set.
    func open(_ settings: ListenerSettings, stateDirectory: String, contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]) async throws
        -> BoundListener
    {
        let prepared = try await prepare(settings, stateDirectory: stateDirectory, contexts: contexts)
        await commit(prepared)
        if accepting.withLockedValue({ $0 }) { await startAccepting(prepared) }
        return prepared.bound
    }

    /// Listeners opened from now on wait, their connections queued by the kernel, until
    /// ``acceptAll()``.
    func holdAccepting() {
        accepting.withLockedValue { $0 = false }
    }

    /// Every listener accepts, and the ones opened from now on do at once.
    func acceptAll() async {
        accepting.withLockedValue { $0 = true }
        for entry in entries.withLockedValue({ Array($0.values) }) {
            try? await entry.channel.setOption(.autoRead, value: true)
        }
    }

    /// Adds a bound listener to the set; one of the same name there before stops accepting.
    /// Returns whether there was one.
    @discardableResult
    func commit(_ prepared: Prepared) async -> Bool {
        let previous = entries.withLockedValue { $0.updateValue(prepared.entry, forKey: prepared.settings.name) }
        try? await previous?.channel.close()
        return previous != nil
    }

    /// A committed listener's socket starts accepting connections. Until then they wait in the
    /// kernel's queue: a change undone never served one.
    func startAccepting(_ prepared: Prepared) async {
        try? await prepared.entry.channel.setOption(.autoRead, value: true)
    }

    /// Closes a listener bound for a change that did not happen.
    func discard(_ prepared: Prepared) async {
        try? await prepared.entry.channel.close()
    }

    /// Binds a listener without adding it to the set; its certificates are made from its TLS settings.
    func prepare(_ settings: ListenerSettings, stateDirectory: String, contexts: [ObjectIdentifier: NIOLoopBound<LoopContext>]) async throws
        -> Prepared
    {
        let tls = try settings.tls.map { try makeTLSContext($0, listener: settings, stateDirectory: stateDirectory) }
        let configuration = Configuration(settings, tls)
        // Made here, not by NIO, so that `gantry up --takeover` can be handed it (``Handover``).
        let socket = try Handover.shared.listeningSocket(
            named: "listener/\(settings.name)", host: settings.address, port: settings.port, kind: .stream, backlog: Self.backlog)
        let channel: any Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.autoRead, value: false)
                .serverChannelOption(.maxMessagesPerRead, value: Self.acceptsPerWakeUp)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try Handover.listen(socket.descriptor, backlog: Self.backlog)  // NIO set its own
                        // Out of descriptors: pause accepting rather than retry it in a busy loop.
                        try channel.pipeline.syncOperations.addHandler(AcceptPause())
                    }
                }
                // Set on the listening socket, whose accepted sockets inherit it (Linux copies the
                // listener's TCP options into each connection): a `childChannelOption` would cost
                // every connection two system calls and a chain of futures.
                .serverChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        guard let context = contexts[ObjectIdentifier(channel.eventLoop)] else { throw ChannelError.ioOnClosedChannel }
                        // A connection keeps its last read buffer between reads (NIO pools it): 512
                        // bytes to start, which holds most request heads, rather than NIO's 2 KiB, so
                        // that an idle keep-alive connection holds less; it doubles on each full read,
                        // up to 64 KiB. Set here, synchronously, rather than as a `childChannelOption`.
                        try channel.syncOptions?.setOption(.recvAllocator, value: Self.receiveBuffers)
                        let (settings, tls) = configuration.current.withLockedValue { $0 }
                        try ListenerPipeline(listener: settings, tls: tls).configure(channel, loop: context)
                    }
                }
                .withBoundSocket(socket.descriptor)
                .get()
        } catch {
            Handover.shared.discard(socket)
            throw error
        }
        channel.closeFuture.whenComplete { _ in Handover.shared.forget(socket.token) }
        return Prepared(entry: Entry(channel: channel, configuration: configuration), settings: settings)
    }

    /// New settings for a bound listener, with their certificates made and checked: nothing
    /// changes until ``update(_:)``.
    struct Update: Sendable {
        let settings: ListenerSettings
        fileprivate let tls: TLSServerContext?
    }

    /// Makes a bound listener's new settings; its certificates are made again only when its TLS
    /// settings changed. Throws what is wrong with them (files, a key that does not match).
    func prepareUpdate(_ settings: ListenerSettings, stateDirectory: String) throws -> Update {
        let current = entries.withLockedValue { $0[settings.name]?.current }
        var tls = current?.tls
        if current?.settings.tls != settings.tls || current?.settings.http2 != settings.http2 {
            tls = try settings.tls.map { try makeTLSContext($0, listener: settings, stateDirectory: stateDirectory) }
        }
        return Update(settings: settings, tls: tls)
    }

    /// Gives a bound listener's next connections their new settings.
    func update(_ update: Update) {
        guard let entry = entries.withLockedValue({ $0[update.settings.name] }) else { return }
        entry.configuration.current.withLockedValue { $0 = (update.settings, update.tls) }
    }

    /// Stops accepting on a listener; the connections it accepted are the data plane's to drain.
    func close(_ name: String) async {
        guard let entry = entries.withLockedValue({ $0.removeValue(forKey: name) }) else { return }
        try? await entry.channel.close()
    }

    /// Stops accepting on every listener.
    func closeAll() async {
        for entry in entries.withLockedValue({ state in defer { state = [:] }; return Array(state.values) }) {
            try? await entry.channel.close()
        }
    }

    /// The certificates a TLS listener serves now.
    func tlsContext(forListener name: String) -> TLSServerContext? {
        entries.withLockedValue { $0[name]?.current.tls }
    }

    var tlsContexts: [(name: String, context: TLSServerContext)] {
        entries.withLockedValue { entries in entries.compactMap { name, entry in entry.current.tls.map { (name, $0) } } }
    }

    /// The listener's certificate files, with the local CA's leaf for `selfSigned` names first.
    private func makeTLSContext(_ settings: TLSSettings, listener: ListenerSettings, stateDirectory: String) throws -> TLSServerContext {
        var files = settings.certificates.map { TLSServerContext.Files(certificate: $0.certificate, key: $0.key) }
        if !settings.selfSigned.isEmpty {
            let authority = LocalCertificateAuthority(stateDirectory: stateDirectory)
            let leaf = try authority.leaf(for: settings.selfSigned)
            files.insert(TLSServerContext.Files(certificate: leaf.certificate, key: leaf.key), at: 0)
            logger.info("local CA", metadata: ["listener": "\(listener.name)", "ca": "\(authority.certificatePath)"])
        }
        return try TLSServerContext(files: files, http2: listener.http2)
    }
}
