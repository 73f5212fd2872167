import Foundation

/// The `websockets` library (Debian's python3-websockets, which `.ci/run` installs) as a
/// WebSocket server and client: a peer written by others, speaking RFC 6455 as browsers do.
public enum PythonWebSocket {
    /// Debian's interpreter, which has the package (another `python3` on the PATH may not).
    public static let python = "/usr/bin/python3"

    /// Greets each connection with what it saw (`path`, `forwardedFor`, `requestId`) as JSON,
    /// then echoes every message.
    static let serverScript = #"""
        import asyncio, json, sys, websockets
        async def handler(ws, path=None):
            await ws.send(json.dumps({"path": ws.path, "forwardedFor": ws.request_headers.get("X-Forwarded-For"),
                                      "requestId": ws.request_headers.get("X-Request-ID")}))
            async for message in ws:
                await ws.send(message)
        async def main():
            async with websockets.serve(handler, "127.0.0.1", 0, max_size=None) as server:
                print("websocket on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
                await asyncio.Future()
        asyncio.run(main())
        """#

    /// `client.py URL [echo|chat|wait] [Header: value]…`: prints one JSON line. `echo` sends a
    /// text message and a 1 MiB binary one and checks their echoes; `chat` sends a text message
    /// and reads until a message with `echo` comes; `wait` waits for the connection
    /// to close and says how (`closeCode`) and after how long. A refused handshake prints its
    /// `status`.
    static let clientScript = #"""
        import asyncio, json, os, sys, time, websockets
        async def main(url, mode="echo", *headers):
            extra = [tuple(h.split(": ", 1)) for h in headers]
            try:
                # Every server in the tests is on loopback; the URL's host is the Host header.
                async with websockets.connect(url, host="127.0.0.1", extra_headers=extra, max_size=None, ping_interval=None) as ws:
                    started = time.monotonic()
                    try:
                        greeting = json.loads(await ws.recv())
                    except websockets.exceptions.ConnectionClosed:
                        if mode != "wait":
                            raise
                        greeting = None  # closed before the server's first message came through
                    if mode == "chat":
                        await ws.send("hello")
                        while True:
                            message = json.loads(await ws.recv())
                            if "echo" in message:
                                print(json.dumps({"greeting": greeting, "echo": message}))
                                return
                    if mode == "wait":
                        await ws.wait_closed()
                        print(json.dumps({"greeting": greeting, "closeCode": ws.close_code, "seconds": time.monotonic() - started}))
                        return
                    big = os.urandom(1 << 20)  # incompressible: permessage-deflate is on
                    await ws.send("hello")
                    text = await ws.recv()
                    await ws.send(big)
                    echoed = await ws.recv()
                    print(json.dumps({"greeting": greeting, "echo": text, "bigEchoed": echoed == big}))
            except websockets.exceptions.InvalidStatusCode as error:
                print(json.dumps({"status": error.status_code}))
        asyncio.run(main(*sys.argv[1:]))
        """#

    /// The server, on a port of its own.
    public static func server() async throws -> PythonPeer {
        try await PythonPeer(script: serverScript, named: "websocket-server.py", marker: "websocket on 127.0.0.1:", interpreter: python)
    }

    /// Runs the client once; its JSON line, parsed.
    public static func client(_ url: String, mode: String = "echo", headers: [String] = []) async throws -> [String: Any] {
        let directory = GantryProcess.scratchDirectory()
        let script = directory.appendingPathComponent("websocket-client.py").path
        try clientScript.write(toFile: script, atomically: true, encoding: .utf8)
        let result = try await run(python, [script, url, mode] + headers, timeout: .seconds(60))
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw TestPKI.Failure(description: "the WebSocket client said \(result.output) \(result.error)")
        }
        return object
    }
}
