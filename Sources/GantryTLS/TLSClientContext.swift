import GantryCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS
import X509

/// TLS contexts for gantry's connections to upstreams, one per set of ``UpstreamTLS`` options,
/// shared by every event loop. A context is built once (reading the system trust store or the
/// CA file takes milliseconds) and built again when one of its files changes on disk, checked
/// at most once a second, so that a rotated client certificate is used by new connections.
public final class TLSClientContext: Sendable {
    public static let shared = TLSClientContext()

    private struct Entry {
        let context: NIOSSLContext
        let stamps: [FileStamp]
        var checked: NIODeadline
    }

    private let entries = NIOLockedValueBox<[UpstreamTLS: Entry]>([:])
    static let recheckInterval = TimeAmount.seconds(1)

    public init() {}

    /// The context for `options`; throws when a file does not load.
    public func context(for options: UpstreamTLS, now: NIODeadline = .now()) throws -> NIOSSLContext {
        let cached = entries.withLockedValue { entries -> NIOSSLContext? in
            guard var entry = entries[options] else { return nil }
            if now - entry.checked < Self.recheckInterval { return entry.context }
            guard Self.stamps(of: options) == entry.stamps else { return nil }
            entry.checked = now
            entries[options] = entry
            return entry.context
        }
        if let cached { return cached }
        let stamps = Self.stamps(of: options)
        let context = try Self.make(options)
        entries.withLockedValue { $0[options] = Entry(context: context, stamps: stamps, checked: now) }
        return context
    }

    private static func stamps(of options: UpstreamTLS) -> [FileStamp] {
        [options.caFile, options.clientCertificate, options.clientKey].compactMap { $0 }.map(FileStamp.init(path:))
    }

    private static func make(_ options: UpstreamTLS) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = options.minimumVersion == .tls13 ? .tlsv13 : .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        configuration.cipherSuiteValues = TLSServerContext.cipherSuites
        configuration.certificateVerification = .fullVerification
        configuration.applicationProtocols = [options.http2 ? "h2" : "http/1.1"]
        if let caFile = options.caFile {
            let roots = try NIOSSLCertificate.fromPEMFile(caFile)
            guard !roots.isEmpty else { throw TLSFileError(path: caFile, reason: "holds no certificate") }
            configuration.trustRoots = .certificates(roots)
        }
        if let certificate = options.clientCertificate, let key = options.clientKey {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate)
            guard !chain.isEmpty else { throw TLSFileError(path: certificate, reason: "holds no certificate") }
            configuration.certificateChain = chain.map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// A TLS failure as a person reads it, for logs: BoringSSL's reason codes say what went
    /// wrong but not what to check.
    public static func explain(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("failedToValidateHostname") {
            return "the certificate does not name the server (check tls.serverName) [\(text)]"
        }
        let reasons: [(code: String, meaning: String)] = [
            ("CERTIFICATE_VERIFY_FAILED", "the certificate did not verify: untrusted (check tls.caFile), expired, or for another name"),
            ("WRONG_VERSION_NUMBER", "the endpoint does not speak TLS (is it plain HTTP?)"),
            ("UNSUPPORTED_PROTOCOL", "no TLS version in common (check tls.minVersion)"),
            ("PROTOCOL_VERSION", "no TLS version in common (check tls.minVersion)"),
            ("CERTIFICATE_REQUIRED", "the endpoint requires a client certificate (tls.clientCertificate, tls.clientKey)"),
            ("HANDSHAKE_FAILURE", "the endpoint refused the handshake (a client certificate it requires? a cipher in common?)"),
            ("UNKNOWN_CA", "the endpoint does not trust gantry's client certificate"),
            ("BAD_CERTIFICATE", "the endpoint refused gantry's client certificate"),
        ]
        if let reason = reasons.first(where: { text.contains($0.code) }) { return "\(reason.meaning) [\(text)]" }
        return text
    }
}

/// Watches a client connection's TLS handshake: completes a promise when it ends, either way,
/// then leaves the pipeline (an upstream connection counts as made only once it can carry a
/// request securely); and holds the peer to the configured server name. BoringSSL's identity
/// check, as swift-nio-ssl runs it, accepts a certificate that names the peer's IP address
/// even when a name was asked for; a configured `serverName` must be named by the certificate
/// itself, as Envoy's SAN matching and nginx's `proxy_ssl_name` require.
public final class TLSHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    private let promise: EventLoopPromise<Void>?
    private let requiredName: String?
    private let requiredProtocol: String?
    private let timeout: TimeAmount?
    private var limit: Scheduled<Void>?
    private var settled = false

    /// `requiredProtocol`: the application protocol ALPN must agree on (`h2`), when the
    /// connection can speak only that. `timeout`: how long the handshake may take once the
    /// connection is up before it fails (``HandshakeTimeout``) and the connection closes; a
    /// peer that accepts and says nothing must not hold its caller, and swift-nio-ssl sets no
    /// limit of its own.
    public init(promise: EventLoopPromise<Void>?, requiredName: String?, requiredProtocol: String? = nil, timeout: TimeAmount? = nil) {
        self.promise = promise
        self.requiredName = requiredName
        self.requiredProtocol = requiredProtocol
        self.timeout = timeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startLimit(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        startLimit(context: context)
        context.fireChannelActive()
    }

    private func startLimit(context: ChannelHandlerContext) {
        guard let timeout, limit == nil else { return }
        limit = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            if !settled { errorCaught(context: context, error: HandshakeTimeout(timeout: timeout)) }
        }
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let negotiated) = event, !settled {
            if let requiredName, let mismatch = Self.mismatch(context: context, requiredName: requiredName) {
                errorCaught(context: context, error: mismatch)
                return
            }
            if let requiredProtocol, negotiated != requiredProtocol {
                errorCaught(context: context, error: ApplicationProtocolMismatch(required: requiredProtocol, negotiated: negotiated))
                return
            }
            settled = true
            promise?.succeed()
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !settled {
            settled = true
            promise?.fail(error)
        }
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !settled {
            settled = true
            promise?.fail(ChannelError.eof)
        }
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        limit?.cancel()
        if !settled {
            settled = true
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    private static func mismatch(context: ChannelHandlerContext, requiredName: String) -> CertificateNameMismatch? {
        let leaf = try? context.pipeline.syncOperations.handler(type: NIOSSLClientHandler.self).peerCertificate
        let names = leaf.flatMap { try? Certificate(derEncoded: $0.toDERBytes()) }.map(LocalCertificateAuthority.names(in:)) ?? []
        let host = HostPattern.normalize(Substring(requiredName))
        if names.contains(where: { HostPattern(rule: $0)?.matches(host) == true }) { return nil }
        return CertificateNameMismatch(required: requiredName, names: names)
    }
}

/// The upstream finished the handshake without agreeing to the protocol gantry must speak.
public struct ApplicationProtocolMismatch: Error, CustomStringConvertible {
    public let required: String
    public let negotiated: String?
    public var description: String {
        "the endpoint did not agree to \(required) by ALPN (it chose \(negotiated ?? "nothing")): does it speak HTTP/2 over TLS? (else use protocol: http1)"
    }
}

/// The TLS handshake did not end within the time given (``TLSHandshakeWatcher``).
public struct HandshakeTimeout: Error, CustomStringConvertible {
    public let timeout: TimeAmount
    public var description: String {
        "no TLS handshake within \(timeout.nanoseconds / 1_000_000) ms: does the endpoint speak TLS?"
    }
}

/// The upstream's certificate is valid but for other names than the one configured.
public struct CertificateNameMismatch: Error, CustomStringConvertible {
    public let required: String
    public let names: [String]
    public var description: String {
        "the certificate does not name the server \(required): it names \(names.isEmpty ? "nothing" : names.joined(separator: ", ")) (check tls.serverName)"
    }
}
