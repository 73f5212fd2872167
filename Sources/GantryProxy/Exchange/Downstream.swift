import GantryConfig
import GantryCore
import NIOCore
import NIOHTTP1

/// The client's side of a request: an HTTP/1.1 connection (``HTTP1Connection``) or an HTTP/2
/// stream (``HTTP2Stream``). The front end reads requests and hands them to a ``ProxyExchange``;
/// the exchange answers through these calls, whatever the protocol. The loop reaches every
/// open front end through them too, for its timeouts and draining.
protocol Downstream: AnyObject {
    var client: ClientSide { get }
    /// Between a read's first part and its end: what the exchange writes upstream meanwhile goes
    /// out with the read's end, so a request found malformed later in the same read never leaves.
    var isInReadBatch: Bool { get }
    var isWritable: Bool { get }

    // MARK: The response, from the exchange

    /// `100 Continue`, once the request is allowed on.
    func sendContinue()
    func writeResponseHead(_ head: UpstreamResponseHead)
    func writeResponseBody(_ buffer: ByteBuffer)
    func writeResponseEnd(_ trailers: HTTPHeaders?)
    /// An answer of gantry's own, whole. `requestComplete`: the request's body has been read.
    func writeLocalResponse(_ response: LocalResponse, requestID: RequestIdentifier, requestComplete: Bool)
    /// Hands what was written to the socket.
    func flush()
    /// Holds reading from the client back (backpressure, a policy's wait) or lets it go on.
    func setReadsPaused(_ paused: Bool)
    /// The response can no longer be completed: close at once, so the client sees it cut short.
    /// The exchange is let go of first and ends itself, under its own status and reason.
    func cutShort()
    /// The exchange has ended and been logged; the front end takes the next request.
    func exchangeEnded(_ exchange: ProxyExchange, now: NIODeadline)

    // MARK: A switched protocol (a WebSocket)

    /// Whether this front end can carry a connection that switches protocols: an HTTP/1.1
    /// connection can; an HTTP/2 stream cannot.
    var canSwitchProtocols: Bool { get }
    /// The request is a tunnel or nothing (an HTTP/2 extended CONNECT): an upgrade the route
    /// does not allow is refused, and an upstream that answers 2xx without switching fails.
    var requiresSwitch: Bool { get }
    /// The upstream agreed to switch (101 has been written): from now on the client's bytes go
    /// to ``ProxyExchange/tunnelFromClient(_:)`` as they come, starting with any that arrived
    /// after the request.
    func switchToTunnel()
    /// Bytes from the upstream, as they came. The tunnel ends with its exchange, and the
    /// connection closes once what was written has gone out.
    func writeTunnelBytes(_ buffer: ByteBuffer)
    /// Ends the tunnel this front end carries, if it goes to `endpoint` (any, when nil), with
    /// WebSocket close frames saying 1001 (``ProxyExchange/closeTunnelGoingAway(ifTo:)``).
    func closeTunnelGoingAway(ifTo endpoint: EndpointAddress?)

    // MARK: From the loop

    /// Checks the front end's deadlines and its exchange's.
    func checkTimeouts(now: NIODeadline)
    /// Graceful shutdown: finish the request in flight, take no new one; an idle connection
    /// closes now or, when not `closingIdle`, after one more request.
    func drain(closingIdle: Bool)
    /// The end of the grace period: close now; an exchange still running ends as the client's close.
    func abort()
    /// Response bytes written but not yet taken by the client's socket.
    var bufferedOutboundBytes: Int { get }
}
