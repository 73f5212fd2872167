import NIOHTTP2

/// One HTTP/2 stream's flow control as gantry keeps it, for a client's stream
/// (``HTTP2Stream``) and an upstream's (``HTTP2UpstreamStream``) alike, since it works on
/// frames rather than through NIO's per-stream channels:
///
/// - inbound, the bytes the exchange has taken are given back to the stream's window once half
///   of it is used, and not while the other side cannot take more (so the peer stops sending);
/// - outbound, the bytes written that NIO still holds for the peer's window are counted, and
///   past ``outboundLimit`` the stream is not writable (the other side's reads pause).
struct StreamFlow {
    static let outboundLimit = 64 * 1024

    let window: Int
    private var toReturn = 0
    /// Written and not yet sent by NIO.
    private(set) var held = 0
    var connectionWritable: Bool
    /// Writable, as last told to the exchange.
    private(set) var isWritable: Bool

    init(window: Int, connectionWritable: Bool) {
        self.window = window
        self.connectionWritable = connectionWritable
        self.isWritable = connectionWritable
    }

    /// The stream's writability, when it changed since last asked.
    mutating func writabilityChange() -> Bool? {
        let writable = connectionWritable && held <= Self.outboundLimit
        guard writable != isWritable else { return nil }
        isWritable = writable
        return writable
    }

    /// What a DATA frame takes from the windows: its data and its padding.
    static func size(of data: HTTP2Frame.FramePayload.Data) -> Int {
        data.data.readableBytes + (data.paddingBytes.map { $0 + 1 } ?? 0)
    }

    mutating func took(_ bytes: Int) {
        toReturn += bytes
    }

    /// The WINDOW_UPDATE increment to send now, once half the window is used.
    mutating func increment() -> Int? {
        guard toReturn >= window / 2 else { return nil }
        defer { toReturn = 0 }
        return toReturn
    }

    mutating func wrote(_ bytes: Int) {
        held += bytes
    }

    mutating func sent(_ bytes: Int) {
        held -= bytes
    }
}
