import Crypto
import Foundation
import GantryCore
import SwiftASN1
import X509

/// Gantry's own certificate authority for `tls.selfSigned`, kept in `<state>/tls/`: a P-256 CA
/// created on first start and reused, and leaf certificates it signs for a listener's names.
/// Trusting `ca.pem` once (`curl --cacert`, a browser's authority list) trusts every listener.
public struct LocalCertificateAuthority: Sendable {
    public let directory: String

    public init(stateDirectory: String) {
        self.directory = stateDirectory + "/tls"
    }

    public var certificatePath: String { directory + "/ca.pem" }
    var keyPath: String { directory + "/ca-key.pem" }

    /// How long issued certificates live; a leaf closer than `renewBefore` to its end is reissued.
    static let caLifetime: TimeInterval = 10 * 365 * 86_400
    static let leafLifetime: TimeInterval = 397 * 86_400  // the CA/Browser Forum's maximum
    static let renewBefore: TimeInterval = 30 * 86_400

    /// The certificate and key files for `names`, issuing them when absent, expiring, or for
    /// other names.
    public func leaf(for names: [String], now: Date = Date()) throws -> (certificate: String, key: String) {
        let (ca, caKey) = try loadOrCreateAuthority(now: now)
        let base = directory + "/" + Self.fileStem(for: names)
        let certificatePath = base + ".pem"
        let keyPath = base + "-key.pem"
        if let existing = try? Certificate(pemEncoded: String(contentsOfFile: certificatePath, encoding: .utf8)),
            FileManager.default.fileExists(atPath: keyPath),
            existing.issuer == ca.subject,
            existing.notValidAfter.timeIntervalSince(now) > Self.renewBefore,
            Set(Self.names(in: existing)) == Set(names.map { $0.lowercased() })
        {
            return (certificatePath, keyPath)
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Self.leafLifetime),
            issuer: ca.subject, subject: try DistinguishedName { CommonName(names.first ?? "gantry") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names.map(Self.generalName))
                AuthorityKeyIdentifier(keyIdentifier: try ca.extensions.subjectKeyIdentifier?.keyIdentifier)
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: caKey)
        try write(key.serializeAsPEM().pemString, to: keyPath, secret: true)
        try write(certificate.serializeAsPEM().pemString, to: certificatePath, secret: false)
        return (certificatePath, keyPath)
    }

    /// The CA's certificate, created on first use.
    @discardableResult
    public func certificateAuthority(now: Date = Date()) throws -> Certificate {
        try loadOrCreateAuthority(now: now).0
    }

    /// Loads the CA, creating it on first use.
    func loadOrCreateAuthority(now: Date) throws -> (Certificate, Certificate.PrivateKey) {
        if let pem = try? String(contentsOfFile: certificatePath, encoding: .utf8),
            let keyPEM = try? String(contentsOfFile: keyPath, encoding: .utf8)
        {
            return (try Certificate(pemEncoded: pem), try Certificate.PrivateKey(pemEncoded: keyPEM))
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("Gantry")
            CommonName("Gantry local CA \(UUID().uuidString.prefix(8))")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Self.caLifetime),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        try write(key.serializeAsPEM().pemString, to: keyPath, secret: true)
        try write(certificate.serializeAsPEM().pemString, to: certificatePath, secret: false)
        return (certificate, key)
    }

    /// DNS names and IP addresses a certificate is for, lowercased.
    public static func names(in certificate: Certificate) -> [String] {
        guard let alternatives = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return alternatives.compactMap { name in
            switch name {
            case .dnsName(let dns): return dns.lowercased()
            case .ipAddress(let bytes):
                return IPv4Address(bytes: bytes.bytes)?.description ?? IPv6Address(bytes: bytes.bytes)?.description
            default: return nil
            }
        }
    }

    private static func generalName(_ name: String) -> GeneralName {
        if let bytes = IPv4Address(name)?.bytes ?? IPv6Address(name)?.bytes {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes)))
        }
        return .dnsName(name.lowercased())
    }

    /// `example.com` → `example.com`, `*.example.com` → `wildcard.example.com`, several names by
    /// the first plus a short digest of all, so each set of names has its own files.
    static func fileStem(for names: [String]) -> String {
        let first = (names.first ?? "gantry").replacingOccurrences(of: "*", with: "wildcard").replacingOccurrences(of: ":", with: "_")
        guard names.count > 1 else { return first }
        let digest = SHA256.hash(data: Array(names.joined(separator: ",").utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
        return first + "-" + digest
    }

    /// Writes whole files only (write then rename), keys readable by the owner alone.
    private func write(_ text: String, to path: String, secret: Bool) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".tmp-\(getpid())"
        FileManager.default.createFile(
            atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644])
        if rename(temporary, path) != 0 { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
    }
}
