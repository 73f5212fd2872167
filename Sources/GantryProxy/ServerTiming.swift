import Foundation
import NIOCore

/// `Server-Timing` (W3C) descriptions, as quoted strings (durations use `millisecondsText`).
enum ServerTiming {
    /// A quoted-string (RFC 9110 §5.6.4): quotes and backslashes escaped.
    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

extension ProxyExchange {
    /// Each stage of this request so far, for `Server-Timing` (milliseconds): the gateway
    /// (admission and policies), finding and connecting to an endpoint (with retries), the
    /// upstream until its response head, and the total; with the route, service and endpoint.
    func serverTimingHeader(now: NIODeadline) -> String {
        let gateway = gatewayDone ?? now
        let sent = upstreamStarted ?? now
        let traceID = plan.upstreamHead.trace?.traceIDHex ?? ""
        return [
            "gateway;dur=\(millisecondsText(gateway.milliseconds(since: started)))",
            "connect;dur=\(millisecondsText(sent.milliseconds(since: gateway)));desc=\"attempts \(attemptCount)\"",
            "upstream;dur=\(millisecondsText(now.milliseconds(since: sent)))",
            "total;dur=\(millisecondsText(now.milliseconds(since: started)))",
            "route;desc=\(ServerTiming.quote(plan.route.name))",
            "policies;desc=\(ServerTiming.quote(plan.settings.policies.map { loop.snapshot.policies[$0].kind }.joined(separator: " ")))",
            "service;desc=\(ServerTiming.quote(plan.service.name))",
            "endpoint;desc=\(ServerTiming.quote(endpointName ?? "-"))",
            "trace;desc=\(ServerTiming.quote(traceID))",
        ].joined(separator: ", ")
    }
}
