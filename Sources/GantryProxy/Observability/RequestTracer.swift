import GantryConfig
import GantryCore
import NIOHTTP1
import Tracing

/// Spans for each request when `tracing.otlp` is set (any swift-distributed-tracing `Tracer`
/// works; `gantry up` gives it swift-otel's). One server span per request, from the head's
/// arrival to the response's end, and its ID is the parent the pod receives in `traceparent`:
/// one span per hop, as Envoy records by default. A second span for the upstream exchange would
/// double the cost of tracing (measured: about 100 µs of CPU per span exported) for what the
/// span's endpoint attributes and the pod's own span already say. Attribute names follow
/// OpenTelemetry's HTTP semantic conventions; gantry's own facts go under `gantry.`.
public struct RequestTracer: Sendable {
    let tracer: any Tracer

    public init(_ tracer: any Tracer) {
        self.tracer = tracer
    }

    /// Starts under the client's trace when its `traceparent` is valid, else a new trace. Its
    /// attributes are set once, when it ends: each update takes the span's lock.
    func startServerSpan(method: String, headers: HTTPHeaders) -> any Span {
        var context = InstrumentationContext.topLevel
        tracer.extract(headers, into: &context, using: TraceHeaders())
        return tracer.startSpan(method, context: context, ofKind: .server)
    }

    /// Sends the span upstream in `traceparent` (and `tracestate`), replacing what the headers
    /// had: the pod's spans become its children.
    func propagate(_ span: any Span, into headers: inout HTTPHeaders) {
        tracer.inject(span.context, into: &headers, using: TraceHeaders())
    }

    /// Ends the span, named after the route's path as the conventions ask, with what the
    /// request met. Only 5xx makes a server span an error (OpenTelemetry's HTTP conventions).
    static func end(_ span: any Span, _ facts: SpanFacts) {
        if span.isRecording {
            if let route = facts.route { span.operationName = "\(facts.method) \(route.path.path)" }
            span.updateAttributes { attributes in
                attributes["http.request.method"] = facts.method
                attributes["url.scheme"] = facts.listener.scheme
                attributes["url.path"] = facts.path
                attributes["server.address"] = facts.host
                attributes["server.port"] = facts.listener.port
                attributes["client.address"] = facts.client
                attributes["network.protocol.version"] = facts.version
                attributes["http.response.status_code"] = facts.status
                attributes["gantry.listener"] = facts.listener.name
                attributes["gantry.request_id"] = facts.requestID
                if let route = facts.route {
                    attributes["http.route"] = route.path.path
                    attributes["gantry.route"] = route.name
                }
                if let service = facts.service { attributes["gantry.service"] = service }
                if let endpoint = facts.endpoint { attributes["gantry.endpoint"] = endpoint.description }
                if let attempts = facts.attempts { attributes["gantry.attempts"] = attempts }
                if let detail = facts.detail { attributes["gantry.detail"] = detail }
            }
            if facts.status >= 500 { span.setStatus(SpanStatus(code: .error, message: facts.detail)) }
        }
        span.end()
    }

    /// What a request met, for its span.
    struct SpanFacts {
        var method: String
        var host: String
        var path: String
        var client: String
        var version: String
        var listener: ListenerSettings
        var requestID: String
        var status: Int
        var detail: String?
        var route: RouteRule? = nil
        var service: String? = nil
        var endpoint: EndpointAddress? = nil
        var attempts: Int? = nil
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
