import Crypto
import Foundation

/// API-key consumers, with keys kept only as SHA-256 digests: the file and the memory hold no
/// key that could be replayed.
public struct APIKeys: Sendable {
    public struct Consumer: Sendable, Hashable {
        public let name: String
        public let groups: [String]

        public init(name: String, groups: [String]) {
            self.name = name
            self.groups = groups
        }
    }

    private let byDigest: [String: Consumer]

    /// - Parameter consumers: each with the hex SHA-256 digests of its keys.
    public init(_ consumers: [(consumer: Consumer, digests: [String])]) {
        var byDigest: [String: Consumer] = [:]
        for (consumer, digests) in consumers {
            for digest in digests { byDigest[digest.lowercased()] = consumer }
        }
        self.byDigest = byDigest
    }

    public func consumer(presenting key: some StringProtocol) -> Consumer? {
        byDigest[Self.digest(of: key)]
    }

    /// The hex SHA-256 of a key, as the file stores it (`gantry` users can compute it with
    /// `printf %s KEY | sha256sum`).
    public static func digest(of key: some StringProtocol) -> String {
        ContentDigest.sha256(key)
    }
}

/// SHA-256 in lowercase hex.
public enum ContentDigest {
    public static func sha256(_ text: some StringProtocol) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
