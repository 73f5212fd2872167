/// Read access to request headers, so pure matching code can run on NIO's `HTTPHeaders` in the
/// proxy and on plain arrays in tests and `gantry routes explain`.
public protocol HeaderLookup {
    /// The first value of a header, by case-insensitive name.
    func first(name: String) -> String?
}

/// Headers as an ordered list of pairs, as a client sends them.
public struct HeaderList: HeaderLookup, Sendable, Equatable {
    public var pairs: [(name: String, value: String)]

    public init(_ pairs: [(name: String, value: String)] = []) {
        self.pairs = pairs
    }

    public func first(name: String) -> String? {
        pairs.first(where: { $0.name.lowercased() == name.lowercased() })?.value
    }

    public static func == (lhs: HeaderList, rhs: HeaderList) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs, by: { $0.name == $1.name && $0.value == $1.value })
    }
}
