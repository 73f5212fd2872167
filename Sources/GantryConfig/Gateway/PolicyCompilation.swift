import Foundation
import GantryCore

/// What a policy kind's `compile` works with: where its spec sits in the file (problems are
/// reported under it, with the file's line), the services it may name, and the files it reads
/// beside gantry.yaml, whose contents become part of the policy's identity (a changed key file
/// is a changed policy).
public struct PolicyCompilation {
    /// `gateway.policies[i].<kind>`.
    let path: SpecPath
    let serviceNames: [String]
    let sourceFile: String
    private(set) var issues: [(path: SpecPath, message: String)] = []
    /// The contents of the files read, in order.
    private(set) var filesRead: [String] = []

    init(path: SpecPath, serviceNames: [String], sourceFile: String) {
        self.path = path
        self.serviceNames = serviceNames
        self.sourceFile = sourceFile
    }

    var hasProblems: Bool { !issues.isEmpty }

    /// A problem with the spec, or with the key at `at` inside it.
    mutating func problem(at components: [PathComponent] = [], _ message: String) {
        issues.append((path / components, message))
    }

    /// A file named in the spec, relative to gantry.yaml's directory: its text, or nil after
    /// reporting that it cannot be read.
    mutating func read(_ file: String, at components: [PathComponent]) -> String? {
        let resolved = SpecCompiler.resolve(file, besides: sourceFile)
        guard let text = try? String(contentsOfFile: resolved, encoding: .utf8) else {
            problem(at: components, "cannot read \(resolved)")
            return nil
        }
        filesRead.append(text)
        return text
    }

    /// A duration that must be longer than zero, or the default when the spec has none.
    mutating func positive(_ value: DurationSpec?, default fallback: Duration, at components: [PathComponent]) -> Duration {
        guard let value else { return fallback }
        guard value.duration > .zero else {
            problem(at: components, "must be longer than zero")
            return fallback
        }
        return value.duration
    }

    /// A header name that must be an RFC 9110 token, lowercased.
    mutating func headerName(_ name: String, at components: [PathComponent]) -> String {
        if !SpecCompiler.isToken(name) { problem(at: components, "\"\(name)\" is not a valid header name") }
        return name.lowercased()
    }

    /// `{claim, header}` pairs: a claim's value goes upstream in the header.
    mutating func claimHeaders(_ specs: [ClaimHeaderSpec]?, example: String, at components: [PathComponent]) -> [(claim: String, header: String)] {
        var pairs: [(String, String)] = []
        for (index, item) in (specs ?? []).enumerated() {
            guard let claim = item.claim, let header = item.header, SpecCompiler.isToken(header) else {
                problem(at: components + [.index(index)], "write \(example)")
                continue
            }
            pairs.append((claim, header.lowercased()))
        }
        return pairs
    }
}

/// `{claim: sub, header: X-User-ID}`
public struct ClaimHeaderSpec: Decodable, Sendable {
    public var claim: String?
    public var header: String?
}
