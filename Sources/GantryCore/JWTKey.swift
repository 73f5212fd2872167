import Crypto
import CryptoExtras
import Foundation

/// A key that verifies JWT signatures, with the algorithms it may be used with. The key's type
/// decides the algorithm family, so an RSA public key can never be used as an HMAC secret
/// (the classic algorithm-confusion attack), and a JWK's `alg`, when present, narrows it to
/// one algorithm.
public struct JWTKey: Sendable {
    enum Material: Sendable {
        case hmac(SymmetricKey)
        case rsa(_RSA.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case ed25519(Curve25519.Signing.PublicKey)
    }

    public let id: String?
    let material: Material
    public let algorithms: Set<JWTAlgorithm>

    init(id: String?, material: Material, only algorithm: JWTAlgorithm? = nil) {
        self.id = id
        self.material = material
        let family: Set<JWTAlgorithm>
        switch material {
        case .hmac: family = [.HS256, .HS384, .HS512]
        case .rsa: family = [.RS256, .RS384, .RS512, .PS256, .PS384, .PS512]
        case .p256: family = [.ES256]
        case .p384: family = [.ES384]
        case .ed25519: family = [.EdDSA]
        }
        algorithms = algorithm.map { family.contains($0) ? [$0] : [] } ?? family
    }

    public static func hmac(secret: some DataProtocol, id: String? = nil) -> JWTKey {
        JWTKey(id: id, material: .hmac(SymmetricKey(data: Data(secret))))
    }

    /// A public key in PEM form: RSA, P-256, P-384 or Ed25519.
    public static func publicKey(pem: String, id: String? = nil) throws -> JWTKey {
        if let key = try? P256.Signing.PublicKey(pemRepresentation: pem) { return JWTKey(id: id, material: .p256(key)) }
        if let key = try? P384.Signing.PublicKey(pemRepresentation: pem) { return JWTKey(id: id, material: .p384(key)) }
        if let key = try? Curve25519.Signing.PublicKey(pemRepresentation: pem) { return JWTKey(id: id, material: .ed25519(key)) }
        return JWTKey(id: id, material: .rsa(try _RSA.Signing.PublicKey(pemRepresentation: pem)))
    }

    /// Whether `signature` signs `input` (the token's `header.payload`) under `algorithm`.
    func verifies(_ signature: Data, of input: Data, with algorithm: JWTAlgorithm) -> Bool {
        guard algorithms.contains(algorithm) else { return false }
        switch (material, algorithm) {
        case (.hmac(let key), .HS256): return HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: input, using: key)
        case (.hmac(let key), .HS384): return HMAC<SHA384>.isValidAuthenticationCode(signature, authenticating: input, using: key)
        case (.hmac(let key), .HS512): return HMAC<SHA512>.isValidAuthenticationCode(signature, authenticating: input, using: key)
        case (.rsa(let key), _):
            let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: signature)
            switch algorithm {
            case .RS256: return key.isValidSignature(rsaSignature, for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5)
            case .RS384: return key.isValidSignature(rsaSignature, for: SHA384.hash(data: input), padding: .insecurePKCS1v1_5)
            case .RS512: return key.isValidSignature(rsaSignature, for: SHA512.hash(data: input), padding: .insecurePKCS1v1_5)
            case .PS256: return key.isValidSignature(rsaSignature, for: SHA256.hash(data: input), padding: .PSS)
            case .PS384: return key.isValidSignature(rsaSignature, for: SHA384.hash(data: input), padding: .PSS)
            case .PS512: return key.isValidSignature(rsaSignature, for: SHA512.hash(data: input), padding: .PSS)
            default: return false
            }
        case (.p256(let key), .ES256):
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: SHA256.hash(data: input))
        case (.p384(let key), .ES384):
            guard let parsed = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: SHA384.hash(data: input))
        case (.ed25519(let key), .EdDSA):
            return key.isValidSignature(signature, for: input)
        default:
            return false
        }
    }
}
