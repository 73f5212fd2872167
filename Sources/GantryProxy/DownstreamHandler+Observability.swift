import GantryCore
import NIOCore
import NIOHTTP1
import Tracing

/// What a connection reports about its requests: trace context, the access log and the
/// request metrics.
extension DownstreamHandler {
    /// What the access log needs about the current request.
    struct RequestFacts {
        var id: RequestIdentifier = ""
        var started = NIODeadline.uptimeNanoseconds(0)
        /// Read only when an access log will record it.
        var wallClock = 0.0
        /// Nil for bytes that were not a request. Spelled only for a log line or a span.
        var method: HTTPMethod?
        var host = ""
        var path = ""

        var methodName: String { method?.rawValue ?? "-" }
    }

    // MARK: Tracing

    /// Sends gantry's span upstream in `traceparent`, under the client's trace or a new one.
    /// Returns whether the response should carry `Server-Timing`.
    /// `facts` describe the client's headers, and hold its first `traceparent` if it sent one.
    func traceUpstream(_ head: inout UpstreamRequestHead, facts: HeaderFacts) -> Bool {
        let incoming = facts.traceparent.flatMap { TraceContext(header: $0) }
        let timing = tracingRequested(facts, incoming: incoming)
        let trace = loop.drawRandom { random in
            incoming?.child(using: &random, sampled: timing) ?? TraceContext.start(using: &random, sampled: timing)
        }
        head.setTrace(trace, dropsTracestate: incoming == nil && facts.hasTracestate)  // it belongs to the trace we replaced
        return timing
    }

    /// The client asked for tracing (`X-Gantry-Trace: 1` or a sampled `traceparent`) and the
    /// file allows answering with `Server-Timing`.
    func tracingRequested(_ facts: HeaderFacts, incoming: TraceContext?) -> Bool {
        guard loop.snapshot.serverTiming else { return false }
        return facts.asksForTiming || incoming?.sampled == true
    }

    /// Ends the request's span, when spans are recorded.
    private func endSpan(status: Int, detail: String?, exchange: ProxyExchange? = nil) {
        guard loop.isTracing, let span else { return }
        self.span = nil
        let version = requestVersion.major == 2 ? "2" : "\(requestVersion.major).\(requestVersion.minor)"
        var facts = RequestTracer.SpanFacts(
            method: request.methodName, host: request.host, path: request.path, client: clientIP, version: version, listener: listener,
            requestID: request.id.description, status: status, detail: detail)
        if let exchange {
            facts.route = exchange.plan.route
            facts.service = exchange.plan.service.name
            facts.endpoint = exchange.endpointAddress
            facts.attempts = exchange.attemptCount
        }
        RequestTracer.end(span, facts)
    }

    // MARK: Access log

    func log(_ exchange: ProxyExchange, now: NIODeadline) {
        lastStatus = exchange.status
        endSpan(status: exchange.status, detail: exchange.detail, exchange: exchange)
        loop.requestMetrics.record(
            route: exchange.plan.route, service: exchange.plan.service.name, status: exchange.status,
            totalNanoseconds: (now - request.started).nanoseconds, upstreamMilliseconds: exchange.upstreamTime)
        guard let accessLog = loop.accessLog else { return }
        let route = exchange.plan.route
        accessLog.append(
            AccessLogRecord(
                time: request.wallClock, requestID: request.id.description, client: clientIP, listener: listener.name,
                method: request.methodName, host: request.host, path: request.path, route: route.name,
                service: exchange.plan.service.name, endpoint: exchange.endpointName, status: exchange.status,
                bytesIn: exchange.requestBytes, bytesOut: exchange.responseBytes, upstreamMs: exchange.upstreamTime,
                totalMs: now.milliseconds(since: request.started), attempts: exchange.attemptCount,
                detail: exchange.detail))
    }

    func logLocal(status: Int, detail: String) {
        lastStatus = status
        endSpan(status: status, detail: detail)
        loop.requestMetrics.recordLocal(reason: detail, status: status)
        guard let accessLog = loop.accessLog else { return }
        accessLog.append(
            AccessLogRecord(
                time: request.wallClock, requestID: request.id.description, client: clientIP, listener: listener.name,
                method: request.methodName, host: request.host, path: request.path, status: status, bytesIn: 0, bytesOut: 0,
                totalMs: NIODeadline.now().milliseconds(since: request.started), attempts: 0, detail: detail))
    }
}
