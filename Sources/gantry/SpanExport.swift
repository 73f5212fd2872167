import GantryConfig
import GantryProxy
import Logging
import OTel
import ServiceLifecycle

/// `tracing.otlp` → swift-otel's tracer and the service that batches and exports its spans.
/// Only traces: gantry's metrics are Prometheus (`/metrics`), its logs go to stderr and the
/// access log.
enum SpanExport {
    struct Backend: Sendable {
        let tracer: RequestTracer
        let service: any Service
        let group: ServiceGroup
    }

    static func backend(_ settings: OTLPSettings, logger: Logger) throws -> Backend {
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.resourceAttributes = ["service.version": Gantry.version]
        configuration.diagnosticLogger = .custom(logger)
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.sampler = .parentBasedTraceIDRatio(ratio: settings.sampling) ?? .parentBasedAlwaysOn
        configuration.traces.batchSpanProcessor.scheduleDelay = settings.exportInterval
        var exporter = configuration.traces.otlpExporter
        exporter.endpoint = settings.endpoint
        exporter.protocol = settings.protocol == .httpJSON ? .httpJSON : .httpProtobuf
        exporter.headers = settings.headers
        exporter.timeout = settings.timeout
        configuration.traces.otlpExporter = exporter
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        var group = ServiceGroupConfiguration(services: [.init(service: backend.service)], logger: logger)
        group.maximumGracefulShutdownDuration = flushLimit
        group.maximumCancellationDuration = .seconds(1)
        let serviceGroup = ServiceGroup(configuration: group)
        return Backend(tracer: RequestTracer(backend.factory), service: BoundedFlush(group: serviceGroup, logger: logger), group: serviceGroup)
    }

    /// How long the last export at shutdown may take: an unreachable collector is retried until
    /// the export timeout, and must not hold up gantry's exit that long.
    static let flushLimit = Duration.seconds(2)

    /// The exporter's service, stopped after `flushLimit` at the latest; a flush cut short is
    /// logged, not an error of `gantry up`.
    struct BoundedFlush: Service {
        let group: ServiceGroup
        let logger: Logger

        func run() async throws {
            do {
                try await group.run()
            } catch {
                logger.warning("spans not exported at shutdown: \(error)")
            }
        }
    }
}

/// The span exporter of the running configuration's `tracing.otlp`: started with it, replaced
/// when it changes (the old one exports what it holds, within ``SpanExport/flushLimit``), and
/// stopped after the data plane when gantry stops, so that the last requests' spans go out.
actor SpanExporter {
    private var running: (group: ServiceGroup, task: Task<Void, Never>)?
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    /// The exporter for `settings`, built but not started: what can fail, apart from what
    /// changes anything. Nil without `tracing.otlp`.
    nonisolated func prepare(_ settings: OTLPSettings?) throws -> SpanExport.Backend? {
        try settings.map { try SpanExport.backend($0, logger: logger) }
    }

    /// Starts exporting with `backend` (stopping any exporter before); nil stops exporting.
    /// Returns the tracer requests record their spans with.
    func start(_ backend: SpanExport.Backend?) async -> RequestTracer? {
        await stop()
        guard let backend else { return nil }
        running = (backend.group, Task { try? await backend.service.run() })
        return backend.tracer
    }

    func stop() async {
        guard let (group, task) = running else { return }
        running = nil
        await group.triggerGracefulShutdown()
        await task.value
    }
}
