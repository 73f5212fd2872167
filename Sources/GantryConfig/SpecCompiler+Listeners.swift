import Foundation

extension SpecCompiler {
    /// `loadBalancer.listeners`: addresses, TLS, HTTP/2 and redirects.
    mutating func compileListeners(_ specs: [ListenerSpec]?, at path: SpecPath) -> [ListenerSettings] {
        guard let specs, !specs.isEmpty else {
            problem(path, "at least one listener is required, e.g. listeners: [{name: http, port: 8080}]")
            return []
        }
        var result: [ListenerSettings] = []
        var names: [String: Int] = [:]
        var bound: [String: Int] = [:]
        for (index, spec) in specs.enumerated() {
            let here = path / index
            let name = spec.name ?? "listener-\(index)"
            if spec.name != nil, !Self.isDNSLabel(name) {
                problem(here / "name", "\"\(name)\" is not a valid name: use lowercase letters, digits and '-'")
            }
            if let first = names[name] {
                problem(here / "name", "duplicate listener name \"\(name)\" (first used by listeners[\(first)])")
            }
            names[name] = names[name] ?? index
            let address = spec.address ?? "127.0.0.1"
            if !Self.isIPLiteral(address) {
                problem(here / "address", "\"\(address)\" is not an IP address: use 127.0.0.1, 0.0.0.0, ::1 or ::")
            }
            guard let port = spec.port else {
                problem(here / "port", "missing required key \"port\"")
                continue
            }
            guard (0...65535).contains(port) else {
                problem(here / "port", "port \(port) is out of range 0–65535")
                continue
            }
            if port != 0 {
                let key = "\(address):\(port)"
                if let first = bound[key] {
                    problem(here / "port", "\(key) is already used by listeners[\(first)]")
                }
                bound[key] = bound[key] ?? index
            }
            let tls = spec.tls.map { compileTLS($0, at: here / "tls") }
            var listener = ListenerSettings(name: name, address: address, port: port, scheme: tls == nil ? "http" : "https")
            listener.tls = tls
            listener.http2 = spec.http2 ?? (tls != nil)
            result.append(listener)
        }
        // Redirects name a listener, so they are resolved once every listener is known.
        for (index, spec) in specs.enumerated() {
            guard let target = spec.redirectTo, let position = result.firstIndex(where: { $0.name == (spec.name ?? "listener-\(index)") })
            else { continue }
            let here = path / index / "redirectTo"
            guard let destination = result.first(where: { $0.name == target }) else {
                let known = result.map(\.name)
                problem(here, "unknown listener \"\(target)\"" + Suggestion.hint(for: target, among: known))
                continue
            }
            guard destination.tls != nil else {
                problem(here, "listener \"\(target)\" has no tls: a redirect goes to a TLS listener")
                continue
            }
            if result[position].tls != nil {
                problem(here, "a TLS listener cannot redirect; put redirectTo on a plain HTTP listener")
                continue
            }
            if destination.port == 0 {
                problem(here, "listener \"\(target)\" has port 0: a redirect needs a fixed port")
                continue
            }
            result[position].redirectToPort = destination.port
        }
        return result
    }

    private mutating func compileTLS(_ spec: TLSSpec, at path: SpecPath) -> TLSSettings {
        var files: [TLSSettings.CertificateFiles] = []
        for (index, certificate) in (spec.certificates ?? []).enumerated() {
            let here = path / "certificates" / index
            guard let cert = certificate.certificate else {
                problem(here / "certificate", "missing required key \"certificate\" (a PEM file)")
                continue
            }
            guard let key = certificate.key else {
                problem(here / "key", "missing required key \"key\" (a PEM private key file)")
                continue
            }
            let certPath = resolve(cert)
            let keyPath = resolve(key)
            if !FileManager.default.isReadableFile(atPath: certPath) {
                problem(here / "certificate", "cannot read \(certPath): check the path (relative paths start at the file's directory)")
            }
            if !FileManager.default.isReadableFile(atPath: keyPath) {
                problem(here / "key", "cannot read \(keyPath): check the path (relative paths start at the file's directory)")
            }
            files.append(TLSSettings.CertificateFiles(certificate: certPath, key: keyPath))
        }
        let selfSigned = spec.selfSigned ?? []
        for (index, name) in selfSigned.enumerated() where !Self.isCertificateName(name) {
            problem(path / "selfSigned" / index, "\"\(name)\" is not a DNS name or IP address for a certificate, e.g. example.com or *.example.com")
        }
        if files.isEmpty, selfSigned.isEmpty, spec.certificates == nil {
            problem(path, "needs certificates: [{certificate: cert.pem, key: key.pem}] or selfSigned: [example.com]")
        }
        var hsts: String?
        if let spec = spec.hsts {
            let maxAge = positive(spec.maxAge, default: .seconds(365 * 24 * 3600), at: path / "hsts" / "maxAge")
            var value = "max-age=\(maxAge.components.seconds)"
            if spec.includeSubDomains == true { value += "; includeSubDomains" }
            if spec.preload == true { value += "; preload" }
            hsts = value
        }
        return TLSSettings(certificates: files, selfSigned: selfSigned, hsts: hsts)
    }

    /// A name a certificate may carry: a DNS name, optionally with one leading `*.` label, or an IP.
    static func isCertificateName(_ name: String) -> Bool {
        if isIPLiteral(name) { return true }
        let host = name.hasPrefix("*.") ? String(name.dropFirst(2)) : name
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        return !labels.isEmpty && host.utf8.count <= 253
            && labels.allSatisfy { label in
                !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                    && label.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || ($0 >= 0x41 && $0 <= 0x5A) }
            }
    }
}
