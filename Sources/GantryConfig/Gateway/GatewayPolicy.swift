import NIOCore

/// One kind of gateway policy (`jwt`, `rateLimit`, `cors`…) as one unit: the spec it decodes
/// from `gateway.policies[i]`, the checks and compilation of that spec, and the evaluation of a
/// request. A kind is registered once, in ``GatewayPolicies/kinds``; nothing else in gantry names
/// it. The data plane calls ``evaluate(_:shared:loop:environment:)`` for each policy a route
/// lists, in order, and interprets the ``PolicyVerdict``.
///
/// State that a policy keeps between requests comes in two parts, both created by the policy
/// and kept by the data plane under the policy's ``PolicyIdentity``, so that it outlives a
/// reload that leaves the policy as it was and starts afresh when it changes:
/// - ``SharedState``: one for every event loop (a rate limit's buckets, fetched keys);
/// - ``LoopState``: one per event loop, touched only there (caches read without a lock).
public protocol GatewayPolicy: Sendable {
    /// `gateway.policies[i].<kind>` as written, decoded with the file's line and column on every problem.
    associatedtype Spec: Decodable & Sendable
    associatedtype SharedState: Sendable = NoPolicyState
    associatedtype LoopState = NoPolicyState

    /// The key that names the kind in the file: `jwt`, `rateLimit`…
    static var kind: String { get }

    /// What this kind tells the policies after it about the caller (a jwt policy: its claims).
    static var establishes: CallerFacts { get }

    /// Checks a decoded spec and compiles it; every problem goes to `compilation`, and a spec
    /// with problems compiles to nil.
    static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> Self?

    /// What an earlier policy on the route must have established, and why (an acl checks the
    /// consumer an apiKey policy found). Checked when routes are compiled.
    var requires: (facts: CallerFacts, because: String)? { get }

    func makeSharedState() -> SharedState
    func makeLoopState() -> LoopState

    /// Runs the policy on a request. `request.now` and `request.monotonic` are the time.
    func evaluate(_ request: inout PolicyRequest, shared: SharedState, loop: LoopState, environment: any PolicyEnvironment) -> PolicyVerdict

    /// Work the policy does while it is in use, until the task is cancelled (a jwt policy
    /// fetching its keys). Most kinds have none.
    func maintain(_ shared: SharedState, environment: any PolicyEnvironment, log: @escaping @Sendable (PolicyLogEntry) -> Void) async
}

/// State for kinds that keep none.
public final class NoPolicyState: Sendable {
    public static let shared = NoPolicyState()
}

extension GatewayPolicy {
    public static var establishes: CallerFacts { [] }
    public var requires: (facts: CallerFacts, because: String)? { nil }
    public func maintain(_ shared: SharedState, environment: any PolicyEnvironment, log: @escaping @Sendable (PolicyLogEntry) -> Void) async {}
    /// The kind's name, for messages, `Server-Timing` and `gantry routes explain`.
    public var kind: String { Self.kind }
}

extension GatewayPolicy where SharedState == NoPolicyState {
    public func makeSharedState() -> NoPolicyState { .shared }
}

extension GatewayPolicy where LoopState == NoPolicyState {
    public func makeLoopState() -> NoPolicyState { .shared }
}

/// What policies learn about the caller for the ones after them.
public struct CallerFacts: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// A verified token's claims (jwt, oauth2).
    public static let claims = CallerFacts(rawValue: 1)
    /// The consumer an API key belongs to (apiKey).
    public static let consumer = CallerFacts(rawValue: 2)
}

/// Something a policy's background work wants in gantry's log.
public struct PolicyLogEntry: Sendable {
    public enum Level: Sendable { case info, warning }
    public let level: Level
    public let message: String
    public let metadata: [String: String]

    public init(_ level: Level, _ message: String, _ metadata: [String: String] = [:]) {
        self.level = level
        self.message = message
        self.metadata = metadata
    }
}
