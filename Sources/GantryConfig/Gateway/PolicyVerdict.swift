import NIOCore

/// What a policy decided about a request.
public enum PolicyVerdict: Sendable {
    /// On to the route's next policy, then upstream.
    case proceed
    /// Gantry answers; the request never reaches an upstream.
    case respond(LocalResponse)
    /// The policy needs an answer from elsewhere first (a token introspection, a shared rate
    /// limit, keys fetched again). Reading from the client pauses meanwhile; the data plane
    /// resumes the request with the answer, on the request's event loop.
    case wait(EventLoopFuture<PolicyResumption>)
}

/// The rest of a policy's decision once its answer has come: it reads and changes the same
/// request, and may decide anything a policy may, waiting again included.
public struct PolicyResumption: Sendable {
    private let body: @Sendable (inout PolicyRequest) -> PolicyVerdict

    public init(_ body: @escaping @Sendable (inout PolicyRequest) -> PolicyVerdict) {
        self.body = body
    }

    /// A decision already made.
    public static func decided(_ verdict: PolicyVerdict) -> PolicyResumption {
        PolicyResumption { _ in verdict }
    }

    public func resume(_ request: inout PolicyRequest) -> PolicyVerdict {
        body(&request)
    }
}
