import GantryCore
import NIOHTTP1

/// The changes a reverse proxy makes to a request's fields on the way upstream (RFC 9110
/// §7.6): the client's hop-by-hop fields (and every field its `Connection` names) and `Expect`
/// (gantry answers `100-continue` itself) stay behind; `X-Forwarded-For` gets the client
/// appended; `X-Forwarded-Proto` and `traceparent` are gantry's own, replacing the client's, as
/// are `X-Forwarded-Host` when the client named a Host and `X-Request-ID` unless the client's is
/// kept; chunked framing is declared again, since `Transfer-Encoding` was dropped.
/// ``UpstreamRequestHead`` applies them to the client's lines or to built fields.
/// On the way back, ``HTTPResponseParser`` leaves out the response's hop-by-hop fields as it
/// reads them.
struct ForwardingHeaders {
    /// The client's `X-Forwarded-For` values, if it sent any, and then the client.
    let forwardedFor: String
    let scheme: String
    /// The Host the client asked for, when it named one.
    let forwardedHost: String?
    /// The request's ID; nil when the client's own is kept.
    let requestID: RequestIdentifier?
    let chunked: Bool
    /// For a request that came without `Host` (HTTP/1.0): it goes upstream as HTTP/1.1, which
    /// needs one, so the service's name, as nginx sends its upstream's.
    let host: String?
    /// The trace context gantry sends upstream, once it is known.
    var trace: TraceContext?
    /// The client's `tracestate` belonged to a `traceparent` that was not valid, and goes too.
    var dropsTracestate = false
    /// The protocol the client may switch to, by its route: the request asks the upstream again,
    /// for gantry's own hop (`Connection: upgrade`).
    var upgrade: String?

    init(
        client head: ClientRequestHead, clientIP: String, scheme: String, host: String, requestID: RequestIdentifier, keptClientID: Bool,
        chunked: Bool, defaultHost: String?
    ) {
        var previousHops: [String] = []
        if head.facts.forwardedForCount > 0 {
            head.forEachField { name, value in
                if HeaderFacts.equal(name, "x-forwarded-for") { previousHops.append(String(decoding: value, as: UTF8.self)) }
            }
        }
        forwardedFor = previousHops.isEmpty ? clientIP : previousHops.joined(separator: ", ") + ", " + clientIP
        self.scheme = scheme
        forwardedHost = host.isEmpty ? nil : host
        self.requestID = keptClientID ? nil : requestID
        self.chunked = chunked
        self.host = head.facts.hostCount == 0 ? defaultHost : nil
    }

    /// Whether every one of the client's fields goes on: the common request, whose lines are
    /// then copied upstream as one run.
    func keepsEveryField(of facts: HeaderFacts) -> Bool {
        !(facts.hasHopByHop || facts.hasExpect || facts.forwardedForCount > 0 || facts.hasForwardedProto
            || (facts.hasForwardedHost && forwardedHost != nil) || (facts.requestID != nil && requestID != nil)
            || (facts.traceparent != nil && trace != nil) || (facts.hasTracestate && dropsTracestate))
    }

    /// Whether the client's field `name` stays behind.
    func drops(_ name: UnsafeRawBufferPointer, facts: HeaderFacts) -> Bool {
        if facts.isHopByHop(name) { return true }
        switch name.count {
        case 6: return HeaderFacts.equal(name, "expect")
        case 10: return dropsTracestate && HeaderFacts.equal(name, "tracestate")
        case 11: return trace != nil && HeaderFacts.equal(name, "traceparent")
        case 12: return requestID != nil && HeaderFacts.equal(name, "x-request-id")
        case 15: return HeaderFacts.equal(name, "x-forwarded-for")
        case 16: return forwardedHost != nil && HeaderFacts.equal(name, "x-forwarded-host")
        case 17: return HeaderFacts.equal(name, "x-forwarded-proto")
        default: return false
        }
    }

    /// gantry's fields, in the order they follow the client's, except `traceparent`, which
    /// comes last and is written from ``trace``.
    func forEachAdded(_ body: (_ name: String, _ value: String) -> Void) {
        forEachAdded(body, requestID: { body("x-request-id", $0.description) })
    }

    /// The same, with the request's ID (when it is gantry's) handed to `id` as it is, for a
    /// writer that spells it straight into its buffer.
    func forEachAdded(_ body: (_ name: String, _ value: String) -> Void, requestID id: (RequestIdentifier) -> Void) {
        body("x-forwarded-for", forwardedFor)
        body("x-forwarded-proto", scheme)
        if let forwardedHost { body("x-forwarded-host", forwardedHost) }
        if let requestID { id(requestID) }
        if chunked { body("transfer-encoding", "chunked") }
        if let host { body("host", host) }
        if let upgrade {
            body("connection", "upgrade")
            body("upgrade", upgrade)
        }
    }
}
