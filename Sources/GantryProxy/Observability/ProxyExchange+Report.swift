import GantryConfig
import GantryCore
import NIOCore

/// What an ended request leaves behind, all read from its ``RequestContext``: one access-log
/// line, its counts in the loop's metrics, and its span.
extension ProxyExchange {
    func finish(now: NIODeadline) {
        loop.metrics.recordStatus(context.status)
        if let reason = context.outcome {
            if reason.isMalformed { loop.metrics.add(.malformedRequests) }
            if context.answeredLocally { loop.recordLocalAnswer(reason, status: context.status) }
        }
        if context.route != nil {
            context.snapshot.gateway.counts(forRoute: context.routeIndex, in: loop.requestMetrics, naming: self)
                .record(status: context.status, totalNanoseconds: (now - context.started).nanoseconds, upstreamMilliseconds: context.upstreamMs)
        }
        if loop.isTracing, let span = context.span {
            var facts = RequestTracer.SpanFacts(
                method: context.methodName, host: context.host, path: context.path, client: downstream?.client.address ?? "unknown",
                version: context.version.major == 2 ? "2" : "\(context.version.major).\(context.version.minor)",
                listener: downstream?.client.listener ?? ListenerSettings(name: "-", address: "", port: 0, scheme: "http"),
                requestID: context.id.description, status: context.status, detail: context.detail)
            if let route = context.route {
                facts.route = route
                facts.service = context.cluster.settings.name
                facts.endpoint = context.endpoint?.address
                facts.attempts = context.attempts
            }
            RequestTracer.end(span, facts)
        }
        guard let accessLog = loop.accessLog else { return }
        accessLog.append(
            AccessLogRecord(
                time: context.wallClock, requestID: context.id.description, client: downstream?.client.address ?? "unknown",
                listener: downstream?.client.listener.name ?? "-", method: context.methodName,
                protocolName: context.version.major == 2 ? "HTTP/2" : context.version.minor == 0 ? "HTTP/1.0" : "HTTP/1.1", host: context.host,
                path: context.path,
                route: context.route?.name, service: context.route.map { _ in context.cluster.settings.name },
                endpoint: context.endpoint?.address.description, status: context.status, bytesIn: context.requestBytes,
                bytesOut: context.responseBytes, upstreamMs: context.upstreamMs, totalMs: now.milliseconds(since: context.started),
                attempts: context.attempts, detail: context.detail))
    }

    /// Each stage of this request so far, for `Server-Timing` (milliseconds): the gateway
    /// (admission and policies), finding and connecting to an endpoint (with retries), the
    /// upstream until its response head, and the total; with the route, policies, service and endpoint.
    func serverTimingHeader(now: NIODeadline) -> String {
        let gateway = context.gatewayDone ?? now
        let sent = context.upstreamStarted ?? now
        let traceID = context.upstreamHead?.trace?.traceIDHex ?? ""
        let policies = context.settings.policies.map { context.snapshot.gateway.policies[$0].kind }
        return [
            "gateway;dur=\(millisecondsText(gateway.milliseconds(since: context.started)))",
            "connect;dur=\(millisecondsText(sent.milliseconds(since: gateway)));desc=\"attempts \(context.attempts)\"",
            "upstream;dur=\(millisecondsText(now.milliseconds(since: sent)))",
            "total;dur=\(millisecondsText(now.milliseconds(since: context.started)))",
            "route;desc=\(ServerTiming.quote(context.route?.name ?? "-"))",
            "policies;desc=\(ServerTiming.quote(policies.joined(separator: " ")))",
            "service;desc=\(ServerTiming.quote(context.cluster.settings.name))",
            "endpoint;desc=\(ServerTiming.quote(context.endpoint?.address.description ?? "-"))",
            "trace;desc=\(ServerTiming.quote(traceID))",
        ].joined(separator: ", ")
    }
}

/// `Server-Timing` (W3C) descriptions, as quoted strings (durations use `millisecondsText`).
enum ServerTiming {
    /// A quoted-string (RFC 9110 §5.6.4): quotes and backslashes escaped.
    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
