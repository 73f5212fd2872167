import NIOHTTP1

/// Why gantry answered a request itself, or cut its exchange short: the one name for it in the
/// access log (`detail`), the metrics (`gantry_local_responses_total{reason}`), spans and
/// `Server-Timing`, with the status it answers with unless the answer sets its own (a
/// redirect's, a fixed response's).
public enum LocalReason: String, CaseIterable, Sendable {
    // The request broke HTTP's rules or the edge's limits; the connection closes after the answer.
    case malformed = "bad_request"
    case headerTooLarge = "header_too_large"
    case uriTooLong = "uri_too_long"
    case unsupportedTransferCoding = "unsupported_transfer_coding"
    case payloadTooLarge = "payload_too_large"
    case requestHeaderTimeout = "request_header_timeout"
    case httpVersionNotSupported = "http_version_not_supported"
    /// CONNECT with an authority-form target: gantry is a reverse proxy, not a tunnel.
    case connectRefused = "connect_refused"

    // The listener and the ingress rules.
    case httpsRedirect = "https_redirect"
    /// `OPTIONS *` with no route for `*`: the server's methods.
    case serverOptions = "server_options"
    case noRoute = "no_route"
    /// An HTTP/2 extended CONNECT for a protocol its route does not switch to (`upgrades`).
    case upgradeNotAllowed = "upgrade_not_allowed"

    // Gateway policies.
    case unauthorized
    case forbidden
    case insufficientScope = "insufficient_scope"
    case corsPreflight = "cors_preflight"
    case corsRefused = "cors_refused"
    case invalidRequest = "invalid_request"
    case methodNotAllowed = "method_not_allowed"
    case unsupportedMediaType = "unsupported_media_type"
    case invalidBody = "invalid_body"
    case redirect
    case fixedResponse = "fixed_response"
    case rateLimited = "rate_limited"
    /// A rate limit in shadow mode (`enforce: false`) would have refused: noted in the access
    /// log of a request that went on, never an answer of its own.
    case rateLimitShadow = "rate_limited_shadow"
    case introspectionUnavailable = "introspection_unavailable"
    case rateLimitStoreUnavailable = "rate_limit_store_unavailable"
    /// A policy's wait ended without an answer it could decide on.
    case policyUnavailable = "policy_unavailable"

    // The service and its endpoints.
    case noEndpoint = "no_endpoint"
    case upstreamAddressUnresolvable = "upstream_address_unresolvable"
    case upstreamConnectFailure = "upstream_connect_failure"
    case upstreamConnectTimeout = "upstream_connect_timeout"
    /// The TLS handshake with an HTTPS endpoint failed (its certificate did not verify, no
    /// version in common…): never retried in plain text.
    case upstreamTLSFailure = "upstream_tls_failure"
    case upstreamTimeout = "upstream_timeout"
    case streamIdleTimeout = "stream_idle_timeout"
    case upstreamReset = "upstream_reset"
    /// An HTTP/2 endpoint refused the stream (REFUSED_STREAM, or above a GOAWAY's last
    /// stream): it processed nothing, so any request may be tried again.
    case upstreamRefusedStream = "upstream_refused_stream"
    case upstreamProtocolError = "upstream_protocol_error"
    /// A gRPC call's own deadline (`grpc-timeout`) passed.
    case deadlineExceeded = "deadline_exceeded"
    /// The upstream answered 502, 503 or 504 and the request was tried again elsewhere: noted in
    /// the access log of a request that then succeeded, never an answer of its own.
    case upstreamErrorResponse = "upstream_error_response"

    /// The client went away before its response ended (nginx's 499).
    case clientClosed = "client_closed"

    // How a switched connection (a WebSocket) ended, when gantry ended it: access log only.
    case tunnelIdleTimeout = "tunnel_idle_timeout"
    case tunnelMaxDuration = "tunnel_max_duration"
    /// The endpoint was leaving, or gantry was stopping, and the drain period ran out.
    case tunnelDrained = "tunnel_drained"

    /// The name in logs and metrics.
    public var label: String { rawValue }

    public var status: HTTPResponseStatus {
        switch self {
        case .malformed, .invalidRequest, .invalidBody: .badRequest
        case .headerTooLarge: .requestHeaderFieldsTooLarge
        case .uriTooLong: .uriTooLong
        case .unsupportedTransferCoding: .notImplemented
        case .payloadTooLarge: .payloadTooLarge
        case .requestHeaderTimeout: .requestTimeout
        case .httpVersionNotSupported: .httpVersionNotSupported
        case .connectRefused: .methodNotAllowed
        case .httpsRedirect, .redirect: .permanentRedirect
        case .noRoute: .notFound
        case .unauthorized: .unauthorized
        case .forbidden, .insufficientScope, .corsRefused, .upgradeNotAllowed: .forbidden
        case .corsPreflight: .noContent
        case .methodNotAllowed: .methodNotAllowed
        case .unsupportedMediaType: .unsupportedMediaType
        case .fixedResponse, .serverOptions, .rateLimitShadow: .ok
        case .rateLimited: .tooManyRequests
        case .introspectionUnavailable, .rateLimitStoreUnavailable, .policyUnavailable, .noEndpoint: .serviceUnavailable
        case .upstreamConnectTimeout, .upstreamTimeout, .streamIdleTimeout, .deadlineExceeded: .gatewayTimeout
        case .upstreamAddressUnresolvable, .upstreamConnectFailure, .upstreamTLSFailure, .upstreamReset, .upstreamRefusedStream,
            .upstreamProtocolError, .upstreamErrorResponse:
            .badGateway
        case .clientClosed: HTTPResponseStatus(statusCode: 499)
        case .tunnelIdleTimeout, .tunnelMaxDuration, .tunnelDrained: .switchingProtocols
        }
    }

    /// The request itself broke HTTP's rules or the edge's size limits.
    public var isMalformed: Bool {
        switch self {
        case .malformed, .headerTooLarge, .uriTooLong, .unsupportedTransferCoding, .payloadTooLarge, .httpVersionNotSupported:
            true
        default: false
        }
    }

    /// What a client reads in the JSON body of an answer about its upstream.
    var upstreamMessage: String {
        switch self {
        case .upstreamTimeout, .streamIdleTimeout, .upstreamConnectTimeout: "the upstream did not answer in time"
        case .upstreamConnectFailure: "could not connect to the upstream"
        case .upstreamTLSFailure: "could not make a secure connection to the upstream"
        case .upstreamProtocolError: "the upstream sent an invalid response"
        case .upstreamReset: "the upstream closed the connection before responding"
        case .upstreamRefusedStream: "the upstream refused the request"
        case .deadlineExceeded: "the call's deadline passed"
        case .upstreamAddressUnresolvable: "the upstream address could not be resolved"
        default: "the upstream failed (\(label))"
        }
    }
}
