/// Follows one direction of a WebSocket (RFC 6455 §5.2) from frame header to frame header,
/// skipping payloads unread, so that gantry knows when it may put a frame of its own in the
/// stream: a close frame (1001, going away) when it ends a tunnel while draining. Written
/// here because NIO's `WebSocketFrameDecoder` decodes every frame, and a tunnel only needs to
/// know where frames start.
public struct WebSocketFrameBoundary: Sendable {
    /// The header of the frame being read, until its payload length is known.
    private var header: [UInt8] = []
    private var payloadLeft: UInt64 = 0

    public init() {}

    /// Between two frames: a frame of gantry's may go here.
    public var atBoundary: Bool { header.isEmpty && payloadLeft == 0 }

    /// Follows `bytes`, the next of the stream. A header that is whole in `bytes` (nearly
    /// every one) is read where it lies; one cut between two reads is gathered byte by byte.
    public mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count {
            if payloadLeft > 0 {
                let skipped = Int(min(payloadLeft, UInt64(bytes.count - index)))
                index += skipped
                payloadLeft -= UInt64(skipped)
            } else if header.isEmpty, let frame = Self.header(in: bytes, at: index) {
                index += frame.size
                payloadLeft = frame.payload
            } else {
                header.append(bytes[index])
                index += 1
                if let frame = header.withUnsafeBytes({ Self.header(in: $0, at: 0) }) {
                    payloadLeft = frame.payload
                    header.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    /// The size and payload length of the frame header at `start`, if `bytes` holds all of it.
    private static func header(in bytes: UnsafeRawBufferPointer, at start: Int) -> (size: Int, payload: UInt64)? {
        guard bytes.count - start >= 2 else { return nil }
        let short = bytes[start + 1] & 0x7F
        let lengthBytes = short == 126 ? 2 : short == 127 ? 8 : 0
        let size = 2 + lengthBytes + (bytes[start + 1] & 0x80 != 0 ? 4 : 0)
        guard bytes.count - start >= size else { return nil }
        guard lengthBytes > 0 else { return (size, UInt64(short)) }
        var payload: UInt64 = 0
        for offset in (start + 2)..<(start + 2 + lengthBytes) { payload = payload << 8 | UInt64(bytes[offset]) }
        return (size, payload)
    }

    /// A close frame with status 1001 (going away) from the server's side: unmasked (§5.1).
    public static let goingAwayFromServer: [UInt8] = [0x88, 0x02, 0x03, 0xE9]

    /// The same from the client's side, masked with `mask` as a client's frames must be.
    public static func goingAwayFromClient(mask: UInt32) -> [UInt8] {
        let key = [UInt8(mask >> 24), UInt8(mask >> 16 & 0xFF), UInt8(mask >> 8 & 0xFF), UInt8(mask & 0xFF)]
        return [0x88, 0x82] + key + [0x03 ^ key[0], 0xE9 ^ key[1]]
    }
}
