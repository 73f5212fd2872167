import NIOHTTP1

/// Changes to a message's header fields: removed, then set, then added, as Kong's
/// request-transformer orders them.
public struct HeaderEdits: Sendable {
    public var add: [(String, String)] = []
    public var set: [(String, String)] = []
    /// Lowercased.
    public var remove: [String] = []

    public var isEmpty: Bool { add.isEmpty && set.isEmpty && remove.isEmpty }

    public init(add: [(String, String)] = [], set: [(String, String)] = [], remove: [String] = []) {
        self.add = add
        self.set = set
        self.remove = remove
    }

    public func apply(to headers: inout HTTPHeaders) {
        guard !isEmpty else { return }
        for name in remove { headers.remove(name: name) }
        for (name, value) in set { headers.replaceOrAdd(name: name, value: value) }
        for (name, value) in add { headers.add(name: name, value: value) }
    }

    /// These edits, then `other`'s.
    public mutating func append(_ other: HeaderEdits) {
        add += other.add
        set += other.set
        remove += other.remove
    }

    static func compile(_ spec: HeaderEditsSpec?, in compilation: inout PolicyCompilation, at key: PathComponent) -> HeaderEdits {
        guard let spec else { return HeaderEdits() }
        func pairs(_ list: [HeaderValueSpec]?, _ name: PathComponent) -> [(String, String)] {
            (list ?? []).enumerated().compactMap { index, item in
                guard let header = item.name, SpecCompiler.isToken(header), let value = item.value else {
                    compilation.problem(at: [key, name, .index(index)], "write {name: X-Header, value: text}")
                    return nil
                }
                return (header, value)
            }
        }
        return HeaderEdits(add: pairs(spec.add, "add"), set: pairs(spec.set, "set"), remove: (spec.remove ?? []).map { $0.lowercased() })
    }
}

public struct HeaderEditsSpec: Decodable, Sendable {
    public var add: [HeaderValueSpec]?
    public var set: [HeaderValueSpec]?
    public var remove: [String]?
}

/// `{name: X-Header, value: text}`
public struct HeaderValueSpec: Decodable, Sendable {
    public var name: String?
    public var value: String?
}
