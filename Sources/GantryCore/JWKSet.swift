import Crypto
import CryptoExtras
import Foundation

/// A JSON Web Key Set (RFC 7517) turned into verification keys: EC (P-256, P-384), RSA, OKP
/// (Ed25519) and oct (HMAC) keys; keys meant for encryption (`use: enc`) and keys that cannot
/// be read are skipped, so one odd key does not take the others down.
public enum JWKSet {
    struct Document: Decodable {
        let keys: [JWK]
    }

    struct JWK: Decodable {
        let kty: String
        let kid: String?
        let use: String?
        let alg: String?
        let crv: String?
        let x: String?
        let y: String?
        let n: String?
        let e: String?
        let k: String?
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static func keys(from json: Data) throws -> [JWTKey] {
        guard let document = try? JSONDecoder().decode(Document.self, from: json) else {
            throw Invalid(description: "not a JWK set: expected {\"keys\": [...]}")
        }
        return document.keys.compactMap(key)
    }

    static func key(_ jwk: JWK) -> JWTKey? {
        guard jwk.use == nil || jwk.use == "sig" else { return nil }
        let only = jwk.alg.flatMap(JWTAlgorithm.init(rawValue:))
        if jwk.alg != nil, only == nil { return nil }
        switch (jwk.kty, jwk.crv) {
        case ("EC", "P-256"):
            guard let x = jwk.x.flatMap(Base64URL.decode), let y = jwk.y.flatMap(Base64URL.decode),
                let key = try? P256.Signing.PublicKey(rawRepresentation: x + y)
            else { return nil }
            return JWTKey(id: jwk.kid, material: .p256(key), only: only)
        case ("EC", "P-384"):
            guard let x = jwk.x.flatMap(Base64URL.decode), let y = jwk.y.flatMap(Base64URL.decode),
                let key = try? P384.Signing.PublicKey(rawRepresentation: x + y)
            else { return nil }
            return JWTKey(id: jwk.kid, material: .p384(key), only: only)
        case ("OKP", "Ed25519"):
            guard let x = jwk.x.flatMap(Base64URL.decode), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: x) else {
                return nil
            }
            return JWTKey(id: jwk.kid, material: .ed25519(key), only: only)
        case ("RSA", _):
            guard let n = jwk.n.flatMap(Base64URL.decode), let e = jwk.e.flatMap(Base64URL.decode),
                let key = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { return nil }
            return JWTKey(id: jwk.kid, material: .rsa(key), only: only)
        case ("oct", _):
            guard let secret = jwk.k.flatMap(Base64URL.decode), !secret.isEmpty else { return nil }
            return JWTKey(id: jwk.kid, material: .hmac(SymmetricKey(data: secret)), only: only)
        default:
            return nil
        }
    }
}
