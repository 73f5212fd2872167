import Foundation
import GantryCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Synchronization

/// `jwt:` checks a JSON Web Token (RFC 7519, signed as RFC 7515 says) and forwards chosen
/// claims upstream. Keys come from files, from a key set (RFC 7517) fetched from a service in
/// gantry or a URL, or both. A fetched key set is refreshed every `refreshInterval`, and fetched
/// again at once when a token names a key gantry does not know (at most once per
/// `minRefetchInterval`); the request waits for that fetch rather than being refused while the
/// issuer rotates its keys.
public struct JWTPolicy: GatewayPolicy {
    public struct Spec: Decodable, Sendable {
        /// Where the verification keys come from: `{service: auth-service, path: /…/jwks.json}`
        /// (a service inside gantry) or `{url: http://…}`.
        public var jwks: RemoteSourceSpec?
        /// Static keys: `[{pemFile: key.pem, kid: k1}]` or `[{jwksFile: keys.json}]`.
        public var keys: [StaticKeySpec]?
        public var issuer: String?
        public var audiences: [String]?
        /// Default 60s.
        public var leeway: DurationSpec?
        public var requiredClaims: [String]?
        /// `[{claim: sub, header: X-User-ID}]`; client-sent copies of these headers are removed.
        public var forwardClaims: [ClaimHeaderSpec]?
        /// Where the token is: `Authorization: Bearer` by default, or `{header: X-Token}`,
        /// `{cookie: session}`, `{query: access_token}`.
        public var from: TokenSourceSpec?
    }

    /// `{pemFile: key.pem, kid: k1}` or `{jwksFile: keys.json}`.
    public struct StaticKeySpec: Decodable, Sendable, ExclusiveKeys {
        public var pemFile: String?
        public var jwksFile: String?
        public var kid: String?

        public static let exclusiveKeys = ExclusiveKeySet(["pemFile", "jwksFile"])
    }

    public static let kind = "jwt"
    public static let establishes: CallerFacts = .claims

    public let name: String
    public let rules: JWTRules
    public let keySource: RemoteSource?
    public let refreshInterval: Duration
    public let minRefetchInterval: Duration
    /// Keys from files, always used (besides fetched ones).
    public let staticKeys: [JWTKey]
    /// (claim, lowercased header name)
    public let forwardClaims: [(claim: String, header: String)]
    public let tokenSource: TokenSource

    public static func compile(_ spec: Spec, name: String, in compilation: inout PolicyCompilation) -> JWTPolicy? {
        let source = spec.jwks.flatMap { RemoteSource.compile($0, defaultPath: "/.well-known/jwks.json", in: &compilation, at: "jwks") }
        var staticKeys: [JWTKey] = []
        for (index, key) in (spec.keys ?? []).enumerated() {
            let here: [PathComponent] = ["keys", .index(index)]
            if let file = key.pemFile {
                guard let text = compilation.read(file, at: here + ["pemFile"]) else { continue }
                do { staticKeys.append(try JWTKey.publicKey(pem: text, id: key.kid)) } catch {
                    compilation.problem(at: here + ["pemFile"], "not an RSA, P-256, P-384 or Ed25519 public key in PEM form")
                }
            } else if let file = key.jwksFile {
                guard let text = compilation.read(file, at: here + ["jwksFile"]) else { continue }
                do { staticKeys += try JWKSet.keys(from: Data(text.utf8)) } catch { compilation.problem(at: here + ["jwksFile"], "\(error)") }
            }
        }
        if spec.jwks == nil && spec.keys == nil {
            compilation.problem("needs keys: set jwks: {service: …, path: …}, jwks: {url: …} or keys: [...]")
        }
        let forward = compilation.claimHeaders(spec.forwardClaims, example: "{claim: sub, header: X-User-ID}", at: ["forwardClaims"])
        let token = TokenSource.compile(spec.from, fallback: .bearer, in: &compilation)
        let rules = JWTRules(
            issuer: spec.issuer, audiences: spec.audiences ?? [], leeway: spec.leeway?.duration ?? .seconds(60),
            requiredClaims: spec.requiredClaims ?? [])
        let refresh = compilation.positive(spec.jwks?.refreshInterval, default: .seconds(300), at: ["jwks", "refreshInterval"])
        let refetch = compilation.positive(spec.jwks?.minRefetchInterval, default: .seconds(30), at: ["jwks", "minRefetchInterval"])
        guard !compilation.hasProblems else { return nil }
        return JWTPolicy(
            name: name, rules: rules, keySource: source, refreshInterval: refresh, minRefetchInterval: refetch,
            staticKeys: staticKeys, forwardClaims: forward, tokenSource: token)
    }

    // MARK: Evaluation

    public func evaluate(_ request: inout PolicyRequest, shared: SharedState, loop: LoopState, environment: any PolicyEnvironment)
        -> PolicyVerdict
    {
        for (_, header) in forwardClaims { request.upstream.headers.remove(name: header) }  // never trust a client's copy
        guard let found = tokenSource.token(in: request.original) else { return .respond(Self.unauthorized(.missing)) }
        let token = String(found)
        let seconds = request.now.timeIntervalSince1970
        loop.catchUp(with: shared)
        if let claims = loop.verified.lookup(token, now: seconds) {
            accept(claims, into: &request)
            return .proceed
        }
        switch JWTVerifier.verify(token, keys: staticKeys + loop.keys, rules: rules, now: request.now) {
        case .success(let claims):
            loop.verified.store(token, claims: claims, rules: rules, now: seconds)
            accept(claims, into: &request)
            return .proceed
        case .failure(.unknownKey(let kid)) where keySource != nil:
            // The issuer may have rotated its keys: fetch them again and check once more.
            guard let fetch = shared.fetch(self, environment: environment, now: request.monotonic, unlessFetchedWithin: minRefetchInterval)
            else { return .respond(Self.unauthorized(.unknownKey(kid))) }
            let policy = self
            return .wait(
                fetch.hop(to: environment.eventLoop).map { keys in
                    PolicyResumption { request in policy.verifyAgain(token, keys: keys, request: &request) }
                }.recover { _ in .decided(.respond(Self.unauthorized(.unknownKey(kid)))) })
        case .failure(let failure):
            return .respond(Self.unauthorized(failure))
        }
    }

    private func verifyAgain(_ token: String, keys: [JWTKey], request: inout PolicyRequest) -> PolicyVerdict {
        switch JWTVerifier.verify(token, keys: staticKeys + keys, rules: rules, now: request.now) {
        case .success(let claims):
            accept(claims, into: &request)
            return .proceed
        case .failure(let failure):
            return .respond(Self.unauthorized(failure))
        }
    }

    private func accept(_ claims: [String: JSONValue], into request: inout PolicyRequest) {
        request.caller.claims = claims
        for (claim, header) in forwardClaims {
            if let value = claims[claim]?.headerValue { request.upstream.headers.add(name: header, value: value) }
        }
    }

    /// 401 with the RFC 6750 §3 challenge: no error code when there was no token at all.
    static func unauthorized(_ failure: JWTFailure) -> LocalResponse {
        let description = failure.description.replacingOccurrences(of: "\"", with: "'")
        let challenge = failure == .missing ? #"Bearer realm="gantry""# : #"Bearer realm="gantry", error="invalid_token", error_description="\#(description)""#
        return LocalResponse(.unauthorized, message: failure.description, extraHeaders: [("www-authenticate", challenge)])
    }

    // MARK: Keys

    public func makeSharedState() -> SharedState { SharedState() }
    public func makeLoopState() -> LoopState { LoopState() }

    /// The fetched keys, for every event loop, and the fetch under way if there is one.
    public final class SharedState: Sendable {
        private struct Fetching {
            var keys: [JWTKey] = []
            var version = 0
            /// Monotonic nanoseconds of the last fetch's start.
            var lastFetch: UInt64?
            var inFlight: EventLoopFuture<[JWTKey]>?
        }

        private let state = NIOLockedValueBox(Fetching())
        /// The keys' version, read on every request without the lock.
        private let published = Atomic<Int>(0)

        public init() {}

        public var keys: [JWTKey] { state.withLockedValue { $0.keys } }

        /// The keys and their version when they changed since `version`.
        func keys(after version: Int) -> (keys: [JWTKey], version: Int)? {
            guard published.load(ordering: .acquiring) != version else { return nil }
            return state.withLockedValue { ($0.keys, $0.version) }
        }

        func publish(_ keys: [JWTKey]) {
            state.withLockedValue { state in
                state.keys = keys
                state.version += 1
                published.store(state.version, ordering: .releasing)
            }
        }

        /// The keys fetched now, by a fetch shared with any already under way; nil when the
        /// last fetch began less than `interval` ago.
        func fetch(_ policy: JWTPolicy, environment: any PolicyEnvironment, now: UInt64, unlessFetchedWithin interval: Duration)
            -> EventLoopFuture<[JWTKey]>?
        {
            enum Decision {
                case join(EventLoopFuture<[JWTKey]>)
                case start(EventLoopPromise<[JWTKey]>)
                case tooSoon
            }
            let decision: Decision = state.withLockedValue { state in
                if let inFlight = state.inFlight { return .join(inFlight) }
                if let last = state.lastFetch, now < last + UInt64(interval.nanoseconds) { return .tooSoon }
                let promise = environment.eventLoop.makePromise(of: [JWTKey].self)
                state.lastFetch = now
                state.inFlight = promise.futureResult
                return .start(promise)
            }
            switch decision {
            case .join(let future):
                return future
            case .tooSoon:
                return nil
            case .start(let promise):
                // Outside the lock: a future that has already completed runs its callbacks at once.
                policy.fetchKeys(environment).whenComplete { [self] result in
                    state.withLockedValue { $0.inFlight = nil }
                    if case .success(let keys) = result { publish(keys) }
                    promise.completeWith(result)
                }
                return promise.futureResult
            }
        }
    }

    /// One event loop's copy of the keys and the tokens that verified with them.
    public final class LoopState {
        private(set) var keys: [JWTKey] = []
        private var version = 0
        var verified = VerifiedTokenCache()

        /// New keys may change verdicts: the cached ones go.
        func catchUp(with shared: SharedState) {
            guard let fresh = shared.keys(after: version) else { return }
            keys = fresh.keys
            version = fresh.version
            verified = VerifiedTokenCache()
        }
    }

    /// One fetch of the key set.
    public func fetchKeys(_ environment: any PolicyEnvironment) -> EventLoopFuture<[JWTKey]> {
        guard let keySource else { return environment.eventLoop.makeSucceededFuture([]) }
        guard let target = keySource.target(in: environment) else {
            return environment.eventLoop.makeFailedFuture(KeyFetchFailure(description: "\(keySource) has no ready endpoint yet"))
        }
        return environment.send(OutgoingRequest(method: .GET, to: target))
            .flatMapThrowing { answer in
                guard answer.status == 200 else { throw KeyFetchFailure(description: "HTTP \(answer.status)") }
                let keys = try JWKSet.keys(from: answer.body)
                guard !keys.isEmpty else { throw KeyFetchFailure(description: "the key set has no usable signing key") }
                return keys
            }
    }

    struct KeyFetchFailure: Error, CustomStringConvertible {
        let description: String
    }

    /// Fetches the keys at once (every second until the first success, e.g. while the auth
    /// service's pods start), then every `refreshInterval`; a failed fetch keeps the keys there are.
    public func maintain(_ shared: SharedState, environment: any PolicyEnvironment, log: @escaping @Sendable (PolicyLogEntry) -> Void) async {
        guard keySource != nil else { return }
        var haveKeys = false
        var failing = false
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let now = NIODeadline.now().uptimeNanoseconds
            do {
                let keys = try await (shared.fetch(self, environment: environment, now: now, unlessFetchedWithin: .zero) ?? fetchKeys(environment)).get()
                if !haveKeys || failing { log(PolicyLogEntry(.info, "JWT keys fetched", ["policy": name, "keys": "\(keys.count)"])) }
                haveKeys = true
                failing = false
            } catch {
                if !failing {
                    log(PolicyLogEntry(.warning, "cannot fetch JWT keys; keeping the ones we have", ["policy": name, "error": "\(error)"]))
                }
                failing = true
            }
            let next = started + (haveKeys ? refreshInterval : .seconds(1))
            while !Task.isCancelled, ContinuousClock.now < next {
                try? await Task.sleep(for: min(.milliseconds(200), next - ContinuousClock.now))
            }
        }
    }
}
