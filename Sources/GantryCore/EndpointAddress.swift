/// An upstream address, `host:port`. Hosts are IP literals or names resolved by the data plane.
public struct EndpointAddress: Sendable, Hashable, CustomStringConvertible, Comparable {
    public let host: String
    public let port: Int
    /// The host and port folded into one number once (FNV-1a), for `hash(into:)`: the data
    /// plane looks an address up in its connection pool on every request, and hashing the
    /// host's bytes each time cost more than the rest of the lookup.
    private let digest: UInt64

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in host.utf8 { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
        self.digest = (digest ^ UInt64(truncatingIfNeeded: port)) &* 0x100_0000_01b3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(digest)
    }

    public static func == (lhs: EndpointAddress, rhs: EndpointAddress) -> Bool {
        lhs.digest == rhs.digest && lhs.port == rhs.port && lhs.host == rhs.host
    }

    /// Parses `127.0.0.1:9001`, `localhost:80` or `[::1]:8080`.
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let port = Int(portText), (1...65535).contains(port) else { return nil }
        self.init(host: String(host), port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    public static func < (lhs: EndpointAddress, rhs: EndpointAddress) -> Bool {
        (lhs.host, lhs.port) < (rhs.host, rhs.port)
    }
}
