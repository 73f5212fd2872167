import GantryCore
import NIOCore
import NIOHTTP1

/// The head a request goes upstream with, as HTTP/1.1: the client's method, its target
/// (rewritten when the route says so) and its fields as ``ForwardingHeaders`` changes them.
///
/// It stays the client's head and the few values gantry adds until something must change the
/// fields as `HTTPHeaders` (a route's policies, the tracer): changing ``built`` makes them, and
/// from then on the head is what was built. Reading ``built`` makes them too, each time, so
/// what only reads a field or two asks ``first(name:)`` or ``values(name:)``. So the common
/// request goes upstream as one copy of the field lines the client sent, with gantry's after
/// them (``HTTP1MessageWriter``), as nginx forwards it, rather than as strings made from the
/// lines, filtered into a second list and written out again.
struct UpstreamRequestHead {
    private(set) var client: ClientRequestHead
    /// The target to send: the client's, or the route's rewrite of it.
    let uri: String
    private(set) var forwarding: ForwardingHeaders
    /// The head once something has changed its fields as `HTTPHeaders`; from then on, the head
    /// is this.
    private(set) var builtHead: HTTPRequestHead?

    init(client: ClientRequestHead, uri: String, forwarding: ForwardingHeaders) {
        self.client = client
        self.uri = uri
        self.forwarding = forwarding
    }

    /// Lets go of the client's head (and of what was built from it) once the request has
    /// ended; ``ClientRequestHead/released`` stands in for it.
    mutating func releaseClient() {
        client = .released
        builtHead = nil
    }

    /// The head as `HTTPHeaders`, for code that reads or changes it so. Changing it keeps what
    /// was built; setting it (the head policies worked on) makes it the head.
    var built: HTTPRequestHead {
        get { builtHead ?? build() }
        set { builtHead = newValue }
        _modify {
            if builtHead == nil { builtHead = build() }
            yield &builtHead!
        }
    }

    /// The first value of a field the client sent and gantry forwards (a balancer's hash key),
    /// read from the client's lines while the head is theirs.
    func first(name: String) -> String? {
        if let builtHead { return builtHead.headers.first(name: name) }
        return values(name: name).first
    }

    /// Every value of a field the client sent and gantry forwards, in order.
    func values(name: String) -> [String] {
        if let builtHead { return builtHead.headers[name] }
        let wanted = name.lowercased()
        return client.pairs { HeaderFacts.equal($0, wanted) && !forwarding.drops($0, facts: client.facts) }.map(\.1)
    }

    /// The trace context going upstream in `traceparent`.
    var trace: TraceContext? {
        guard let builtHead else { return forwarding.trace }
        return builtHead.headers.first(name: "traceparent").flatMap { TraceContext(header: $0) }
    }

    /// Sends `trace` upstream in `traceparent`, in place of the client's, and drops the
    /// client's `tracestate` when it belonged to a trace that was replaced.
    mutating func setTrace(_ trace: TraceContext, dropsTracestate: Bool) {
        if builtHead == nil {
            forwarding.trace = trace
            forwarding.dropsTracestate = dropsTracestate
        } else {
            built.headers.replaceOrAdd(name: "traceparent", value: trace.header)
            if dropsTracestate { built.headers.remove(name: "tracestate") }
        }
    }

    /// Asks the upstream to switch to `protocolName` (`Upgrade`), the one the route allows.
    mutating func setUpgrade(_ protocolName: String) {
        if builtHead == nil {
            forwarding.upgrade = protocolName
        } else {
            built.headers.replaceOrAdd(name: "connection", value: "upgrade")
            built.headers.replaceOrAdd(name: "upgrade", value: protocolName)
        }
    }

    private func build() -> HTTPRequestHead {
        var fields = client.pairs { !forwarding.drops($0, facts: client.facts) }
        forwarding.forEachAdded { fields.append(($0, $1)) }
        if let trace = forwarding.trace { fields.append(("traceparent", trace.header)) }
        return HTTPRequestHead(version: .http1_1, method: client.method, uri: uri, headers: HTTPHeaders(fields))
    }
}
