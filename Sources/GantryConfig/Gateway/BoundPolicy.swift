/// A compiled policy with its state, as one event loop runs it.
public struct BoundPolicy {
    public let kind: String
    private let run: (inout PolicyRequest, any PolicyEnvironment) -> PolicyVerdict

    init(kind: String, run: @escaping (inout PolicyRequest, any PolicyEnvironment) -> PolicyVerdict) {
        self.kind = kind
        self.run = run
    }

    public func evaluate(_ request: inout PolicyRequest, environment: any PolicyEnvironment) -> PolicyVerdict {
        run(&request, environment)
    }
}

extension CompiledPolicy {
    /// Fresh state for every event loop: keep it under ``identity`` while the policy is in use.
    public func makeSharedState() -> any Sendable {
        policy.makeSharedState()
    }

    /// Fresh state for one event loop.
    public func makeLoopState() -> Any {
        policy.makeLoopState()
    }

    /// The policy with states this policy (or one with the same identity) made.
    public func bind(shared: any Sendable, loop: Any) -> BoundPolicy {
        Self.bind(policy, shared: shared, loop: loop)
    }

    /// The policy's background work with the shared state, until the task is cancelled.
    public func maintain(shared: any Sendable, environment: any PolicyEnvironment, log: @escaping @Sendable (PolicyLogEntry) -> Void) async {
        await Self.maintain(policy, shared: shared, environment: environment, log: log)
    }

    private static func bind<Policy: GatewayPolicy>(_ policy: Policy, shared: any Sendable, loop: Any) -> BoundPolicy {
        // The identity includes the kind, so states kept under it are this kind's.
        let shared = shared as! Policy.SharedState
        let loop = loop as! Policy.LoopState
        return BoundPolicy(kind: Policy.kind) { request, environment in
            policy.evaluate(&request, shared: shared, loop: loop, environment: environment)
        }
    }

    private static func maintain<Policy: GatewayPolicy>(
        _ policy: Policy, shared: any Sendable, environment: any PolicyEnvironment, log: @escaping @Sendable (PolicyLogEntry) -> Void
    ) async {
        await policy.maintain(shared as! Policy.SharedState, environment: environment, log: log)
    }
}
