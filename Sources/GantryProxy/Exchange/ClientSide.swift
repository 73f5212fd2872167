import GantryConfig

/// Who the client is and where it came in: its address and the listener that accepted its
/// connection. One per connection (or HTTP/2 stream), read in place by each of its requests: a
/// class, so that a request reads a field or two through one reference rather than copying the
/// listener's settings through the front end's protocol.
final class ClientSide {
    let listener: ListenerSettings
    /// The listener's settings a request reads, kept apart: read through the struct, the whole
    /// struct was copied (a retain and a release of each of its strings) for every request.
    let scheme: String
    let redirectToPort: Int?
    let service: String?
    /// The client's IP address, known once the connection is active.
    var address = "unknown"

    init(listener: ListenerSettings) {
        self.listener = listener
        self.scheme = listener.scheme
        self.redirectToPort = listener.redirectToPort
        self.service = listener.service
    }
}
