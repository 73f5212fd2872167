import Crypto
import CryptoExtras
import Foundation
import Testing

@testable import GantryCore

/// Tokens signed here with swift-crypto, verified by gantry's verifier.
private enum Sign {
    static func token(header: [String: Any], claims: [String: Any], sign: (Data) throws -> Data) throws -> String {
        let head = Base64URL.encode(try JSONSerialization.data(withJSONObject: header, options: .sortedKeys))
        let body = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims, options: .sortedKeys))
        let input = Data("\(head).\(body)".utf8)
        return "\(head).\(body).\(Base64URL.encode(try sign(input)))"
    }
}

struct JWTVerifierTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let ecKey = P256.Signing.PrivateKey()
    static let rules = JWTRules(issuer: "https://example.com/auth", audiences: ["example.com"], leeway: .seconds(30), requiredClaims: ["sub"])
    nonisolated(unsafe) static let good: [String: Any] = [
        "iss": "https://example.com/auth", "aud": ["other", "example.com"], "sub": "demo", "iat": 1_800_000_000 - 10,
        "exp": 1_800_000_000 + 600,
    ]

    static var ecJWK: [JWTKey] {
        let raw = ecKey.publicKey.rawRepresentation
        let jwks: [String: Any] = [
            "keys": [
                ["kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": Base64URL.encode(raw.prefix(32)), "y": Base64URL.encode(raw.suffix(32))],
                ["kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc", "x": "AA", "y": "AA"],
            ]
        ]
        return try! JWKSet.keys(from: JSONSerialization.data(withJSONObject: jwks))
    }

    static func es256(_ claims: [String: Any], kid: String? = "k1", key: P256.Signing.PrivateKey = ecKey) throws -> String {
        var header: [String: Any] = ["alg": "ES256", "typ": "JWT"]
        header["kid"] = kid
        return try Sign.token(header: header, claims: claims) { try key.signature(for: $0).rawRepresentation }
    }

    @Test func aGoodES256TokenFromAJWKSVerifies() throws {
        #expect(Self.ecJWK.count == 1)  // the encryption key is skipped
        let result = JWTVerifier.verify(try Self.es256(Self.good), keys: Self.ecJWK, rules: Self.rules, now: Self.now)
        let claims = try result.get()
        #expect(claims["sub"] == .string("demo"))
        #expect(claims["sub"]?.headerValue == "demo")
    }

    /// A claim a field value cannot hold is not forwarded as a header: CR and LF in it would
    /// write fields, or a request, of the token holder's choosing.
    @Test func claimsWithControlBytesAreNoHeaderValues() {
        #expect(JSONValue.string("alice\r\nX-Injected: 1").headerValue == nil)
        #expect(JSONValue.array([.string("a"), .string("b\u{0}")]).headerValue == nil)
        #expect(JSONValue.string("caf\u{E9}\tok").headerValue == "caf\u{E9}\tok")
    }

    @Test(arguments: [
        ("exp", 1_800_000_000 - 31, JWTFailure.expired),
        ("nbf", 1_800_000_000 + 31, .notYetValid),
        ("iat", 1_800_000_000 + 31, .issuedInTheFuture),
        ("iss", "https://evil.example", .wrongIssuer),
        ("aud", "someone-else", .wrongAudience),
    ] as [(String, any Sendable, JWTFailure)])
    func claimChecks(claim: String, value: any Sendable, failure: JWTFailure) throws {
        var claims = Self.good
        claims[claim] = value
        #expect(JWTVerifier.verify(try Self.es256(claims), keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(failure))
    }

    @Test func leewayForgivesSmallClockDifferences() throws {
        var claims = Self.good
        claims["exp"] = 1_800_000_000 - 29
        claims["nbf"] = 1_800_000_000 + 29
        #expect((try? JWTVerifier.verify(try Self.es256(claims), keys: Self.ecJWK, rules: Self.rules, now: Self.now).get()) != nil)
    }

    @Test func requiredClaimsMustBeThere() throws {
        var claims = Self.good
        claims["sub"] = nil
        #expect(JWTVerifier.verify(try Self.es256(claims), keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(.missingClaim("sub")))
    }

    @Test func signaturesAndKeysAreChecked() throws {
        let other = P256.Signing.PrivateKey()
        #expect(JWTVerifier.verify(try Self.es256(Self.good, key: other), keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(.badSignature))
        #expect(JWTVerifier.verify(try Self.es256(Self.good, kid: "k9"), keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(.unknownKey("k9")))
        let token = try Self.es256(Self.good)
        var parts = token.split(separator: ".").map(String.init)
        var tampered = Self.good
        tampered["sub"] = "admin"
        parts[1] = Base64URL.encode(try JSONSerialization.data(withJSONObject: tampered, options: .sortedKeys))
        #expect(JWTVerifier.verify(parts.joined(separator: "."), keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(.badSignature))
        #expect(JWTVerifier.verify("not.a.jwt", keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(.malformed))
    }

    @Test func noneAndAlgorithmConfusionAreRefused() throws {
        let unsigned = try Sign.token(header: ["alg": "none", "kid": "k1"], claims: Self.good) { _ in Data() }
        #expect(JWTVerifier.verify(unsigned, keys: Self.ecJWK, rules: Self.rules, now: Self.now) == .failure(.algorithmNotAllowed("none")))

        // An HS256 token whose "secret" is the RSA public key: the classic confusion attack.
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let rsaKey = try JWTKey.publicKey(pem: rsa.publicKey.pemRepresentation, id: "r1")
        let confused = try Sign.token(header: ["alg": "HS256", "kid": "r1"], claims: Self.good) { input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Data(rsa.publicKey.pemRepresentation.utf8))))
        }
        #expect(JWTVerifier.verify(confused, keys: [rsaKey], rules: Self.rules, now: Self.now) == .failure(.algorithmNotAllowed("HS256")))

        let rs256 = try Sign.token(header: ["alg": "RS256", "kid": "r1"], claims: Self.good) { input in
            try rsa.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation
        }
        #expect((try? JWTVerifier.verify(rs256, keys: [rsaKey], rules: Self.rules, now: Self.now).get()) != nil)
        let ps256 = try Sign.token(header: ["alg": "PS256", "kid": "r1"], claims: Self.good) { input in
            try rsa.signature(for: SHA256.hash(data: input), padding: .PSS).rawRepresentation
        }
        #expect((try? JWTVerifier.verify(ps256, keys: [rsaKey], rules: Self.rules, now: Self.now).get()) != nil)
    }

    @Test func hmacAndEdDSA() throws {
        let secret = Data("a-long-shared-secret-for-hs256-tests".utf8)
        let hs = try Sign.token(header: ["alg": "HS256"], claims: Self.good) { input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: secret)))
        }
        #expect((try? JWTVerifier.verify(hs, keys: [.hmac(secret: secret)], rules: Self.rules, now: Self.now).get()) != nil)
        #expect(JWTVerifier.verify(hs, keys: [.hmac(secret: Data("wrong".utf8))], rules: Self.rules, now: Self.now) == .failure(.badSignature))

        let ed = Curve25519.Signing.PrivateKey()
        let jwk: [String: Any] = ["keys": [["kty": "OKP", "crv": "Ed25519", "kid": "e1", "x": Base64URL.encode(ed.publicKey.rawRepresentation)]]]
        let keys = try JWKSet.keys(from: JSONSerialization.data(withJSONObject: jwk))
        let token = try Sign.token(header: ["alg": "EdDSA", "kid": "e1"], claims: Self.good) { try ed.signature(for: $0) }
        #expect((try? JWTVerifier.verify(token, keys: keys, rules: Self.rules, now: Self.now).get()) != nil)
    }
}

/// RFC 7515 §4.1.11 (`crit`), RFC 7515 §2 and RFC 4648 §5 (base64url, one spelling per
/// token), and the report `gantry jwt check` prints.
struct JOSEStrictnessTests {
    static func token(header: [String: Any]) throws -> String {
        try Sign.token(header: header, claims: JWTVerifierTests.good) { try JWTVerifierTests.ecKey.signature(for: $0).rawRepresentation }
    }

    static func verify(_ token: String) -> Result<[String: JSONValue], JWTFailure> {
        JWTVerifier.verify(token, keys: JWTVerifierTests.ecJWK, rules: JWTVerifierTests.rules, now: JWTVerifierTests.now)
    }

    @Test(arguments: [
        (["crit": "exp"], "crit must be an array of header names"),
        (["crit": [String]()], "crit must not be empty"),
        (["crit": [7]], "crit must list header names as strings"),
        (["crit": ["alg"]], "crit lists alg, which the JWS specifications define"),
        (["crit": ["kid"]], "crit lists kid, which the JWS specifications define"),
        (["crit": ["b64"], "b64": false], "crit lists b64, an extension gantry does not implement"),
        (["crit": ["exp"], "exp": 1_800_000_600], "crit lists exp, an extension gantry does not implement"),
        (["crit": ["missing"]], "crit lists missing, which the header does not have"),
        (["crit": ["x", "x"], "x": 1], "crit lists x twice"),
    ] as [([String: any Sendable], String)])
    func critIsRefusedUnlessEveryNameIsHonoured_RFC7515_4_1_11(extra: [String: any Sendable], why: String) throws {
        var header: [String: Any] = ["alg": "ES256", "kid": "k1"]
        for (name, value) in extra { header[name] = value }
        // Signed correctly: only crit is wrong.
        #expect(Self.verify(try Self.token(header: header)) == .failure(.critical(why)))
    }

    @Test func aHeaderWithoutCritStillVerifies() throws {
        #expect((try? Self.verify(try Self.token(header: ["alg": "ES256", "kid": "k1", "x-extra": 1])).get()) != nil)
    }

    /// RFC 7515 §2, RFC 4648 §5 and §3.5: only the URL-safe alphabet, no padding, zero bits
    /// past the last byte. Each other spelling of a valid token is refused.
    @Test func base64urlHasOneSpelling_RFC7515_2() throws {
        let token = try Self.token(header: ["alg": "ES256", "kid": "k1"])
        #expect((try? Self.verify(token).get()) != nil)
        var parts = token.split(separator: ".").map(String.init)
        // A 64-byte signature is 86 characters: the last one carries 2 bits of no byte. Setting
        // them spells the same bytes, which a lenient decoder would take.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let last = parts[2].removeLast()
        let value = alphabet.firstIndex(of: last)!
        #expect(value & 0b11 == 0)
        let respelled = parts[0] + "." + parts[1] + "." + parts[2] + String(alphabet[value | 0b01])
        #expect(Self.verify(respelled) == .failure(.malformed))
        parts[2].append(last)
        for variant in [
            token + "=",  // padding
            token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/"),  // base64, not base64url
            parts[0] + "=." + parts[1] + "." + parts[2],
            parts[0] + "." + parts[1] + "." + parts[2] + "AAA",  // 89 characters: one left over
        ] where variant != token {
            #expect(Self.verify(variant) == .failure(.malformed), "\(variant)")
        }
        #expect(Base64URL.decode("TWFu") == Data("Man".utf8))
        #expect(Base64URL.decode("TWE") == Data("Ma".utf8))
        #expect(Base64URL.decode("TQ") == Data("M".utf8))
        #expect(Base64URL.decode("TR") == nil)  // non-zero trailing bits
        #expect(Base64URL.decode("TWF") == nil)
        #expect(Base64URL.decode("") == Data())
        #expect(Base64URL.decode("T") == nil)
        #expect(Base64URL.decode("-_-_") == Data([0xFB, 0xFF, 0xBF]))
    }

    /// The report names every check, in the proxy's order, and goes on past the first failure.
    @Test func theReportShowsEachCheck() throws {
        let good = JWTReport(try JWTVerifierTests.es256(JWTVerifierTests.good), keys: JWTVerifierTests.ecJWK, rules: JWTVerifierTests.rules, now: JWTVerifierTests.now)
        #expect(good.accepted)
        #expect(good.checks.map(\.name) == ["format", "alg", "kid", "signature", "exp", "iat", "iss", "aud", "sub"])
        #expect(good.checks.first { $0.name == "kid" }?.detail == "k1")

        var claims = JWTVerifierTests.good
        claims["exp"] = 1_800_000_000 - 100
        claims["aud"] = "elsewhere"
        claims.removeValue(forKey: "sub")
        let other = P256.Signing.PrivateKey()
        let bad = JWTReport(try JWTVerifierTests.es256(claims, key: other), keys: JWTVerifierTests.ecJWK, rules: JWTVerifierTests.rules, now: JWTVerifierTests.now)
        #expect(!bad.accepted)
        #expect(bad.failure == .badSignature, "the proxy's answer: the first failure")
        #expect(bad.checks.filter { !$0.passed }.map(\.name) == ["signature", "exp", "aud", "sub"])
        let unknown = JWTReport(try JWTVerifierTests.es256(JWTVerifierTests.good, kid: "k9"), keys: JWTVerifierTests.ecJWK, rules: JWTVerifierTests.rules, now: JWTVerifierTests.now)
        #expect(unknown.failure == .unknownKey("k9"))
        #expect(JWTReport("a.b", keys: [], rules: JWTRules(), now: JWTVerifierTests.now).checks.map(\.name) == ["format"])
    }
}

struct TokenBucketTests {
    let second: UInt64 = 1_000_000_000

    @Test func burstThenSteadyRate() {
        let bucket = TokenBucket(requests: 10, per: .seconds(1), burst: 3)
        var state = bucket.fresh(now: 0)
        #expect(bucket.take(&state, now: 0) == .allow(remaining: 2))
        #expect(bucket.take(&state, now: 0) == .allow(remaining: 1))
        #expect(bucket.take(&state, now: 0) == .allow(remaining: 0))
        #expect(bucket.take(&state, now: 0) == .deny(retryAfter: .milliseconds(100)))
        #expect(bucket.take(&state, now: second / 20) == .deny(retryAfter: .milliseconds(50)))
        #expect(bucket.take(&state, now: second / 10) == .allow(remaining: 0))
        #expect(!bucket.isFull(state, now: second / 10))
        #expect(bucket.isFull(state, now: second))  // refilled, up to the burst only
        #expect(bucket.take(&state, now: 10 * second) == .allow(remaining: 2))
    }

    @Test func overAMinuteTheRateHolds() {
        let bucket = TokenBucket(requests: 60, per: .seconds(60))
        var state = bucket.fresh(now: 0)
        var allowed = 0
        for millisecond in stride(from: UInt64(0), to: 60_000, by: 10) {
            if case .allow = bucket.take(&state, now: millisecond * 1_000_000) { allowed += 1 }
        }
        #expect(allowed == 60 + 59)  // the initial burst of 60, then one a second
    }
}

/// The examples of RFC 7515 Appendix A, verbatim: their keys and tokens must verify (before
/// the example's `exp`, 2011-03-22), and must fail once a byte changes.
struct RFC7515ExampleTests {
    static let payload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    static let before = Date(timeIntervalSince1970: 1_300_819_000)
    static let after = Date(timeIntervalSince1970: 1_300_819_381 + 60)

    static func keys(_ jwk: String) throws -> [JWTKey] {
        try JWKSet.keys(from: Data(#"{"keys": [\#(jwk)]}"#.utf8))
    }

    @Test func hs256AppendixA1() throws {
        let keys = try Self.keys(#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#)
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\(Self.payload).dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        let claims = try JWTVerifier.verify(token, keys: keys, rules: JWTRules(issuer: "joe", leeway: .zero), now: Self.before).get()
        #expect(claims["http://example.com/is_root"] == .bool(true))
        #expect(JWTVerifier.verify(token, keys: keys, rules: JWTRules(leeway: .zero), now: Self.after) == .failure(.expired))
        let tampered = token.replacingOccurrences(of: "dBjftJeZ4CVP", with: "dBjftJeZ4CVQ")
        #expect(JWTVerifier.verify(tampered, keys: keys, rules: JWTRules(), now: Self.before) == .failure(.badSignature))
    }

    @Test func es256AppendixA3() throws {
        let keys = try Self.keys(
            #"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#)
        let token =
            "eyJhbGciOiJFUzI1NiJ9.\(Self.payload).DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
        #expect((try? JWTVerifier.verify(token, keys: keys, rules: JWTRules(issuer: "joe"), now: Self.before).get()) != nil)
        #expect(JWTVerifier.verify(token, keys: keys, rules: JWTRules(issuer: "jane"), now: Self.before) == .failure(.wrongIssuer))
    }
}

struct VerifiedTokenCacheTests {
    @Test func verdictsHoldOnlyWithinTheTokensWindow() {
        var cache = VerifiedTokenCache(capacity: 2, recheckAfter: 300)
        let rules = JWTRules(leeway: .seconds(10))
        cache.store("t1", claims: ["exp": .number(1000), "nbf": .number(500), "sub": .string("ada")], rules: rules, now: 800)
        #expect(cache.lookup("t1", now: 800)?["sub"] == .string("ada"))
        #expect(cache.lookup("t1", now: 489) == nil)  // before nbf − leeway
        #expect(cache.lookup("t1", now: 1009) != nil)
        #expect(cache.lookup("t1", now: 1010) == nil)  // exp + leeway
        cache.store("t2", claims: [:], rules: rules, now: 0)
        #expect(cache.lookup("t2", now: 299) != nil)
        #expect(cache.lookup("t2", now: 300) == nil)  // without exp: checked again after 300 s
        cache.store("t3", claims: [:], rules: rules, now: 0)  // full: emptied first
        #expect(cache.count == 1)
        #expect(cache.lookup("t1", now: 800) == nil)
    }
}
