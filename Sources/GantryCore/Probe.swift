/// A Kubernetes container probe, compiled: what to check and how often.
public struct Probe: Sendable, Hashable {
    public enum Action: Sendable, Hashable {
        /// Success is a status in 200..<400 within the timeout.
        case httpGet(path: String, port: Int, headers: [HeaderField])
        /// Success is an established TCP connection within the timeout.
        case tcpSocket(port: Int)
        /// Success is `SERVING` from `grpc.health.v1.Health/Check` for `service` (empty: the
        /// server as a whole), over HTTP/2 without TLS, as Kubernetes' gRPC probe asks.
        case grpc(port: Int, service: String)
        /// Success is exit status 0 within the timeout.
        case exec(command: [String])
    }

    public struct HeaderField: Sendable, Hashable {
        public let name: String
        public let value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public let action: Action
    public let initialDelay: Duration
    public let period: Duration
    public let timeout: Duration
    public let successThreshold: Int
    public let failureThreshold: Int

    /// Defaults are Kubernetes': no initial delay, every 10 s, 1 s timeout, 1 success, 3 failures.
    public init(
        action: Action, initialDelay: Duration = .zero, period: Duration = .seconds(10), timeout: Duration = .seconds(1),
        successThreshold: Int = 1, failureThreshold: Int = 3
    ) {
        self.action = action
        self.initialDelay = initialDelay
        self.period = period
        self.timeout = timeout
        self.successThreshold = successThreshold
        self.failureThreshold = failureThreshold
    }
}
