import GantryCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import X509

#if canImport(Glibc)
import Glibc
#endif

/// One TLS listener's certificates as a ready `NIOSSLContext`: TLS 1.2 and 1.3 only, modern
/// AEAD cipher suites, ALPN, and per-connection certificate choice by SNI. The files are watched
/// (`reloadIfChanged`): a replaced certificate is used by new connections, and connections
/// already open keep the one they shook hands with.
public final class TLSServerContext: Sendable {
    public struct Files: Sendable, Hashable {
        public let certificate: String
        public let key: String

        public init(certificate: String, key: String) {
            self.certificate = certificate
            self.key = key
        }
    }

    private struct Loaded {
        let context: NIOSSLContext
        let stamps: [FileStamp]
    }

    public let files: [Files]
    private let protocols: [String]
    private let loaded: NIOLockedValueBox<Loaded>

    /// ECDHE with AES-GCM or ChaCha20-Poly1305 for TLS 1.2 (Mozilla's "intermediate" list);
    /// TLS 1.3's suites are all AEAD and fixed by BoringSSL.
    static let cipherSuites: [NIOTLSCipher] = [
        .TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, .TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        .TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, .TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        .TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, .TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]

    /// - Parameters:
    ///   - files: certificate and key files; the first is the default for clients without SNI.
    ///   - http2: offer `h2` before `http/1.1` in ALPN.
    public init(files: [Files], http2: Bool) throws {
        precondition(!files.isEmpty, "a TLS listener needs a certificate")
        self.files = files
        self.protocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        self.loaded = NIOLockedValueBox(try Self.load(files, protocols: protocols))
    }

    /// The context for a connection accepted now.
    public var sslContext: NIOSSLContext { loaded.withLockedValue { $0.context } }

    /// Loads the files again if any changed on disk since they were read. Returns true when the
    /// new certificates are in use; throws (keeping the old ones) when the new files do not load,
    /// for example while they are being written.
    @discardableResult
    public func reloadIfChanged() throws -> Bool {
        guard Self.stamps(of: files) != loaded.withLockedValue({ $0.stamps }) else { return false }
        let fresh = try Self.load(files, protocols: protocols)
        loaded.withLockedValue { $0 = fresh }
        return true
    }

    private static func stamps(of files: [Files]) -> [FileStamp] {
        files.flatMap { [FileStamp(path: $0.certificate), FileStamp(path: $0.key)] }
    }

    private static func load(_ files: [Files], protocols: [String]) throws -> Loaded {
        let stamps = Self.stamps(of: files)
        var chains: [[NIOSSLCertificate]] = []
        var keys: [NIOSSLPrivateKey] = []
        var names: [[String]] = []
        for file in files {
            let chain = try NIOSSLCertificate.fromPEMFile(file.certificate)
            guard let leaf = chain.first else { throw TLSFileError(path: file.certificate, reason: "holds no certificate") }
            chains.append(chain)
            keys.append(try NIOSSLPrivateKey(file: file.key, format: .pem))
            let parsed = try Certificate(derEncoded: leaf.toDERBytes())
            names.append(LocalCertificateAuthority.names(in: parsed))
        }
        let selector = CertificateSelector(names: names)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chains[0].map { .certificate($0) }, privateKey: .privateKey(keys[0]))
        configuration.minimumTLSVersion = .tlsv12
        configuration.maximumTLSVersion = .tlsv13
        configuration.cipherSuiteValues = cipherSuites
        configuration.applicationProtocols = protocols
        if files.count > 1 {
            // Captures this load's certificates: a reload builds a new context and callback.
            let chosen = (chains, keys)
            configuration.sslContextCallback = { values, promise in
                let index = selector.select(values.serverHostname)
                guard index != 0 else { return promise.succeed(.noChanges) }
                var override = NIOSSLContextConfigurationOverride()
                override.certificateChain = chosen.0[index].map { .certificate($0) }
                override.privateKey = .privateKey(chosen.1[index])
                promise.succeed(override)
            }
        }
        return Loaded(context: try NIOSSLContext(configuration: configuration), stamps: stamps)
    }
}

public struct TLSFileError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path) \(reason)" }
}

/// What tells a replaced file apart: inode, size and modification time.
struct FileStamp: Hashable, Sendable {
    let inode: UInt64
    let size: Int64
    let modified: Int64

    init(path: String) {
        var info = stat()
        if stat(path, &info) == 0 {
            inode = UInt64(info.st_ino)
            size = Int64(info.st_size)
            modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        } else {
            inode = 0
            size = -1
            modified = 0
        }
    }
}
