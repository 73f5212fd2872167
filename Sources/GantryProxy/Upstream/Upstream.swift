import NIOCore

/// The upstream's side of a request, as ``Downstream`` is the client's: an HTTP/1.1 connection
/// (``UpstreamHandler``) or one stream of an HTTP/2 connection (``HTTP2UpstreamStream``). The
/// exchange sends its request through these calls and hears the response through its
/// `upstreamReceived…` methods, whatever the protocol.
protocol Upstream: AnyObject {
    /// The exchange using this upstream; nil once it has let go.
    var exchange: ProxyExchange? { get set }
    /// False once this upstream must carry no other request (the connection said it closes, a
    /// response was cut short, …).
    var keepAlive: Bool { get set }
    var isWritable: Bool { get }

    /// Gathers a request part; it goes out with the next ``flush()``. `inout` only so that
    /// the caller's head is read in place rather than copied for the call.
    func writeHead(_ head: inout UpstreamRequestHead)
    func writeBody(_ buffer: ByteBuffer)
    func writeEnd()
    func flush()
    /// Bytes of a switched protocol (HTTP/1.1 only).
    func writeTunnelBytes(_ buffer: ByteBuffer)
    /// Holds reading from the upstream back while the client cannot take more.
    func setReadsPaused(_ paused: Bool)
    /// Abandons the request: the connection closes, or the stream is reset.
    func close()
    /// The request's response or idle timeout passed (``close()`` follows): an HTTP/2
    /// connection checks that its endpoint is still there, since other streams share it.
    func timedOut()
    /// The exchange has ended with the whole response. `reusable`: the request went whole too,
    /// and asked for no protocol switch, so an HTTP/1.1 connection may go back to its pool.
    func finished(reusable: Bool, now: NIODeadline)
}
