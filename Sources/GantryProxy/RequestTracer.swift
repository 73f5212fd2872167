import GantryCore
import NIOHTTP1
import Tracing

/// Spans for each request when `tracing.otlp` is set (any swift-distributed-tracing `Tracer`
/// works; `gantry up` gives it swift-otel's). Per request: a server span from the head's arrival
/// to the response's end, and, when the request goes upstream, a client span for the upstream
/// exchange whose ID is what the pod receives as its parent in `traceparent`. Attribute names
/// follow OpenTelemetry's HTTP semantic conventions; gantry's own facts go under `gantry.`.
public struct RequestTracer: Sendable {
    let tracer: any Tracer

    public init(_ tracer: any Tracer) {
        self.tracer = tracer
    }

    /// Starts under the client's trace when its `traceparent` is valid, else a new trace.
    func startServerSpan(method: String, headers: HTTPHeaders, facts: ServerFacts) -> any Span {
        var context = InstrumentationContext.topLevel
        tracer.extract(headers, into: &context, using: TraceHeaders())
        let span = tracer.startSpan(method, context: context, ofKind: .server)
        guard span.isRecording else { return span }
        span.updateAttributes { attributes in
            attributes["http.request.method"] = method
            attributes["url.scheme"] = facts.scheme
            attributes["server.port"] = facts.port
            attributes["client.address"] = facts.client
            attributes["network.protocol.version"] = facts.version
            attributes["gantry.listener"] = facts.listener
            attributes["gantry.request_id"] = facts.requestID
        }
        return span
    }

    /// The route is known: the span is named after it, as the conventions ask.
    func routed(_ span: any Span, method: String, host: String, path: String, route: RouteRule?, service: String?) {
        guard span.isRecording else { return }
        if let route { span.operationName = "\(method) \(route.path.path)" }
        span.updateAttributes { attributes in
            attributes["server.address"] = host
            attributes["url.path"] = path
            if let route {
                attributes["http.route"] = route.path.path
                attributes["gantry.route"] = route.name
            }
            if let service { attributes["gantry.service"] = service }
        }
    }

    /// The client span for the upstream exchange, sent upstream in `traceparent` (and
    /// `tracestate`), replacing what the headers had.
    func startUpstreamSpan(parent: any Span, method: String, service: String, headers: inout HTTPHeaders) -> any Span {
        let span = tracer.startSpan("\(method) \(service)", context: parent.context, ofKind: .client)
        tracer.inject(span.context, into: &headers, using: TraceHeaders())
        if span.isRecording {
            span.attributes["http.request.method"] = method
            span.attributes["gantry.service"] = service
        }
        return span
    }

    /// Ends the upstream span with the endpoint that answered and the status. Client spans mark
    /// 4xx and 5xx as errors, server spans only 5xx (OpenTelemetry's HTTP conventions).
    static func endUpstream(_ span: any Span, status: Int, endpoint: EndpointAddress?, attempts: Int, detail: String?) {
        if span.isRecording {
            span.updateAttributes { attributes in
                if let endpoint {
                    attributes["server.address"] = endpoint.host
                    attributes["server.port"] = endpoint.port
                }
                attributes["http.response.status_code"] = status
                attributes["gantry.attempts"] = attempts
                if let detail { attributes["gantry.detail"] = detail }
            }
            if status >= 400 || status == 0 { span.setStatus(SpanStatus(code: .error, message: detail)) }
        }
        span.end()
    }

    static func endServer(_ span: any Span, status: Int, detail: String?) {
        if span.isRecording {
            span.attributes["http.response.status_code"] = status
            if let detail { span.attributes["gantry.detail"] = detail }
            if status >= 500 { span.setStatus(SpanStatus(code: .error, message: detail)) }
        }
        span.end()
    }

    struct ServerFacts {
        var scheme: String
        var port: Int
        var client: String
        var version: String
        var listener: String
        var requestID: String
    }
}

/// `traceparent` and `tracestate` in HTTP headers. A `traceparent` that is not valid W3C is not
/// handed to the tracer: the spec says to treat it as absent, and a tracer would log each one.
struct TraceHeaders: Extractor, Injector {
    func extract(key: String, from carrier: HTTPHeaders) -> String? {
        guard let value = carrier.first(name: key) else { return nil }
        if key == "traceparent", TraceContext(header: value) == nil { return nil }
        return value
    }

    func inject(_ value: String, forKey key: String, into carrier: inout HTTPHeaders) {
        carrier.replaceOrAdd(name: key, value: value)
    }
}
