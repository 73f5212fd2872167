/// JWS algorithms gantry verifies (RFC 7518 §3, RFC 8037). `none` is not one of them.
public enum JWTAlgorithm: String, Sendable, Hashable, CaseIterable {
    case HS256, HS384, HS512
    case RS256, RS384, RS512
    case PS256, PS384, PS512
    case ES256, ES384
    case EdDSA
}
