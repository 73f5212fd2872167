import NIOHTTP2

/// One HTTP/2 stream's flow control as gantry keeps it, for a client's stream
/// (``HTTP2Stream``) and an upstream's (``HTTP2UpstreamStream``) alike, since it works on
/// frames rather than through NIO's per-stream channels:
///
/// - inbound, the bytes the exchange has taken are given back to the stream's window once half
///   of it is used, and not while the other side cannot take more (so the peer stops sending);
/// - outbound, the bytes written that NIO still holds for the peer's window are counted, and
///   past ``outboundLimit`` the stream is not writable (the other side's reads pause).
///
/// Outbound, not every write is followed to its completion: a promise and its callbacks through
/// NIO's HTTP/2 and TLS handlers cost more than a small response's proxying. NIO sends a
/// stream's DATA in order, so a followed write's completion says that every byte before it
/// was sent too; one write in ``confirmEvery`` bytes is followed. The count is then high by
/// less than that, so a stream over the limit always has a followed write still to complete,
/// which brings it back under.
struct StreamFlow {
    static let outboundLimit = 64 * 1024
    static let confirmEvery = 16 * 1024

    let window: Int
    private var toReturn = 0
    /// Written and not yet sent by NIO.
    private(set) var held = 0
    /// Written to NIO since the last followed write.
    private var unconfirmed = 0
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

    /// Bytes given to the stream to send.
    mutating func wrote(_ bytes: Int) {
        held += bytes
    }

    /// Bytes going to NIO: when the write is to be followed, the bytes its completion confirms
    /// as sent (``sent(_:)``).
    mutating func writing(_ bytes: Int) -> Int? {
        unconfirmed += bytes
        guard unconfirmed >= Self.confirmEvery else { return nil }
        defer { unconfirmed = 0 }
        return unconfirmed
    }

    mutating func sent(_ bytes: Int) {
        held -= bytes
    }
}
