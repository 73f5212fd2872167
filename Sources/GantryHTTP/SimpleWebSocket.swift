import NIOCore
import NIOWebSocket

/// One WebSocket (RFC 6455) a ``SimpleHTTPServer`` accepted: text messages out, a clean close.
/// Messages in come to the handler as a stream; pings are answered and the client's close is
/// echoed by the server, as the protocol asks.
public struct SimpleWebSocket: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<WebSocketFrame>

    public func send(_ text: String) async throws {
        try await outbound.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
    }

    /// Sends a close frame with `code` (1001, going away, when the server stops) and ends the
    /// socket's output.
    public func close(code: WebSocketErrorCode = .normalClosure) async {
        var payload = ByteBuffer()
        payload.write(webSocketErrorCode: code)
        try? await outbound.write(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload))
        outbound.finish()
    }

    /// Runs `handler` on an upgraded channel until either it returns or the client closes.
    static func serve(
        _ channel: NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, request: SimpleHTTPServer.Request,
        handler: @escaping SimpleHTTPServer.WebSocketHandler, opened: (SimpleWebSocket) -> (() -> Void)?
    ) async {
        try? await channel.executeThenClose { inbound, outbound in
            let socket = SimpleWebSocket(outbound: outbound)
            // nil: the server is stopping, and the socket closes at once.
            guard let forget = opened(socket) else {
                await socket.close(code: .goingAway)
                return
            }
            defer { forget() }
            let (messages, incoming) = AsyncStream.makeStream(of: String.self)
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await handler(request, socket, messages) }
                group.addTask {
                    do {
                        for try await frame in inbound {
                            switch frame.opcode {
                            case .text:
                                incoming.yield(String(buffer: frame.unmaskedData))
                            case .ping:
                                try await outbound.write(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData))
                            case .connectionClose:
                                // §5.5.1: answer with the same code, then the connection ends.
                                var data = frame.unmaskedData
                                let code = data.readWebSocketErrorCode() ?? .normalClosure
                                await socket.close(code: code)
                                return
                            default:
                                break
                            }
                        }
                    } catch {}
                }
                await group.next()
                incoming.finish()
                group.cancelAll()
            }
        }
    }
}
