import Foundation

extension SpecCompiler {
    /// `tracing.otlp`: a collector URL the exporter can use, a sampling ratio, valid headers.
    mutating func compileOTLP(_ spec: OTLPSpec, at path: SpecPath) -> OTLPSettings {
        var settings = OTLPSettings()
        if let endpoint = spec.endpoint {
            if let url = URL(string: endpoint), ["http", "https"].contains(url.scheme ?? ""), !(url.host ?? "").isEmpty {
                settings.endpoint = endpoint
            } else {
                problem(path / "endpoint", "\"\(endpoint)\" is not an http or https URL, e.g. http://127.0.0.1:4318/v1/traces")
            }
        }
        if let value = spec.protocol { settings.protocol = value }
        for (name, value) in (spec.headers ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard Self.isToken(name) else {
                problem(path / "headers" / name, "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~)")
                continue
            }
            guard !value.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                problem(path / "headers" / name, "the value must not contain CR, LF or NUL")
                continue
            }
            settings.headers.append((name.lowercased(), value))
        }
        if let sampling = spec.sampling {
            if (0...1).contains(sampling) { settings.sampling = sampling } else {
                problem(path / "sampling", "must be between 0 and 1 (the share of new traces recorded)")
            }
        }
        if let name = spec.serviceName {
            if name.isEmpty { problem(path / "serviceName", "must not be empty") } else { settings.serviceName = name }
        }
        settings.exportInterval = positive(spec.exportInterval, default: settings.exportInterval, at: path / "exportInterval")
        settings.timeout = positive(spec.timeout, default: settings.timeout, at: path / "timeout")
        return settings
    }
}
