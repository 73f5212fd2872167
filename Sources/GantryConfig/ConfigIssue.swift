/// One step of a path into the file: a mapping key or a sequence index.
public enum PathComponent: Sendable, Hashable {
    case key(String)
    case index(Int)
}

extension PathComponent: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral key: String) { self = .key(key) }
    public init(integerLiteral index: Int) { self = .index(index) }
}

/// A path into gantry.yaml, printed as `gateway.routes[1].service`.
public struct SpecPath: Sendable, Hashable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var components: [PathComponent]

    public init(_ components: [PathComponent] = []) {
        self.components = components
    }

    public init(arrayLiteral elements: PathComponent...) {
        self.components = elements
    }

    public init(codingPath: [any CodingKey]) {
        self.components = codingPath.map { key in
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(index)" {
                return .index(index)
            }
            return .key(key.stringValue)
        }
    }

    public func appending(_ key: String) -> SpecPath { SpecPath(components + [.key(key)]) }
    public func appending(_ index: Int) -> SpecPath { SpecPath(components + [.index(index)]) }
    public static func / (lhs: SpecPath, rhs: String) -> SpecPath { lhs.appending(rhs) }
    public static func / (lhs: SpecPath, rhs: Int) -> SpecPath { lhs.appending(rhs) }
    public static func / (lhs: SpecPath, rhs: [PathComponent]) -> SpecPath { SpecPath(lhs.components + rhs) }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text.isEmpty ? "(top level)" : text
    }
}

/// A position in the file, 1-based like editors and compilers.
public struct SourceLocation: Sendable, Hashable, Comparable {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }
}

/// One problem in gantry.yaml, printed as `file:line:column: path: message`.
public struct ConfigIssue: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var location: SourceLocation?
    public var path: SpecPath
    public var message: String

    public init(file: String = "", location: SourceLocation? = nil, path: SpecPath, message: String) {
        self.file = file
        self.location = location
        self.path = path
        self.message = message
    }

    public var description: String {
        let position = location.map { "\($0.line):\($0.column)" } ?? "1:1"
        return "\(file):\(position): \(path): \(message)"
    }
}

/// Everything wrong with a file, reported at once.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public let issues: [ConfigIssue]

    public init(issues: [ConfigIssue]) {
        self.issues = issues
    }

    public var description: String {
        let count = issues.count == 1 ? "1 problem" : "\(issues.count) problems"
        return (issues.map(\.description) + ["\(count) found"]).joined(separator: "\n")
    }
}
