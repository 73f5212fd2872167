import Foundation

/// gRPC peers for the tests: Debian's `python3-grpcio` (gRPC's own C core) as the service and
/// as the client. Messages are raw bytes (generic handlers), so no generated code is needed;
/// the health service's two small messages are written by hand.
public enum PythonGRPC {
    public static let python = "/usr/bin/python3"

    /// `grpc-server.py [--port N] [--host H] [--tls CERT KEY] [--max-streams N] [--max-age-ms N] [--sick]`;
    /// `--port`/`--host` default to `$PORT`/`$POD_IP` (a pod's), else an ephemeral port on loopback.
    static let serverScript = #"""
        import argparse, json, os, sys, threading, time
        from concurrent import futures
        import grpc

        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "0")))
        parser.add_argument("--host", default=os.environ.get("POD_IP", "127.0.0.1"))
        parser.add_argument("--tls", nargs=2)
        parser.add_argument("--max-streams", type=int)
        parser.add_argument("--max-age-ms", type=int)
        parser.add_argument("--sick", action="store_true")
        args = parser.parse_args()

        peers = set()
        lock = threading.Lock()

        def seen(context):
            with lock:
                peers.add(context.peer())

        def metadata(context):
            return {key: value for key, value in context.invocation_metadata()}

        def unary(request, context):
            seen(context)
            md = metadata(context)
            return json.dumps({"echo": request.decode(), "forwardedFor": md.get("x-forwarded-for"),
                               "requestId": md.get("x-request-id"), "authority": md.get(":authority"),
                               "timeout": context.time_remaining() is not None and context.time_remaining() < 3600}).encode()

        def server_stream(request, context):
            seen(context)
            count = int(request.decode())
            for index in range(count):
                yield ("msg-%d" % index).encode()

        def slow_stream(request, context):
            seen(context)
            yield b"first"
            time.sleep(float(request.decode()))
            yield b"late"

        def client_stream(requests, context):
            seen(context)
            return b"+".join(requests)

        def bidi(requests, context):
            seen(context)
            for message in requests:
                yield message.upper()

        def fail(request, context):
            seen(context)
            context.set_trailing_metadata([("detail-key", "detail-value")])
            context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: " + request.decode())

        def slow(request, context):
            seen(context)
            time.sleep(float(request.decode()))
            return b"done"

        def list_peers(request, context):
            with lock:
                return json.dumps(sorted(peers)).encode()

        def health(request, context):
            # HealthCheckRequest { string service = 1; }, by hand.
            service = request[2:].decode() if len(request) > 2 else ""
            if service == "unknown":
                context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
            serving = 2 if args.sick or service == "sick" else 1
            return bytes([0x08, serving])

        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "SlowStream": grpc.unary_stream_rpc_method_handler(slow_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "Peers": grpc.unary_unary_rpc_method_handler(list_peers),
        }
        options = []
        if args.max_streams:
            options.append(("grpc.max_concurrent_streams", args.max_streams))
        if args.max_age_ms:
            options += [("grpc.max_connection_age_ms", args.max_age_ms), ("grpc.max_connection_age_grace_ms", 5000)]
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=options)
        server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler("test.Echo", handlers),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(health)}),
        ])
        address = "%s:%d" % (args.host, args.port)
        if args.tls:
            credentials = grpc.ssl_server_credentials([(open(args.tls[1], "rb").read(), open(args.tls[0], "rb").read())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        server.start()
        print("grpc on %s:%d" % (args.host, port), flush=True)
        server.wait_for_termination()
        """#

    /// `grpc-client.py TARGET MODE [ARG] [--token T] [--timeout S] [--count N] [--warm]`: one
    /// JSON line with the call's status code name, details, and what it returned (`--count`:
    /// N calls at once, on one connection, as `calls`).
    static let clientScript = #"""
        import argparse, json, sys, threading
        import grpc

        parser = argparse.ArgumentParser()
        parser.add_argument("target")
        parser.add_argument("mode")
        parser.add_argument("arg", nargs="?", default="")
        parser.add_argument("--token")
        parser.add_argument("--timeout", type=float)
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--warm", action="store_true", help="one Unary call first, on the same connection")
        args = parser.parse_args()

        channel = grpc.insecure_channel(args.target)
        metadata = [("authorization", "Bearer " + args.token)] if args.token else None
        received = []

        def call():
            method = "/test.Echo/" + args.mode
            if args.mode in ("ServerStream", "SlowStream"):
                stub = channel.unary_stream(method)
                for message in stub(args.arg.encode(), timeout=args.timeout, metadata=metadata):
                    received.append(message.decode())
                return None
            if args.mode == "ClientStream":
                stub = channel.stream_unary(method)
                return stub(iter([b"a", b"b", b"c"]), timeout=args.timeout, metadata=metadata).decode()
            if args.mode == "Bidi":
                stub = channel.stream_stream(method)
                for message in stub(iter([b"x", b"y"]), timeout=args.timeout, metadata=metadata):
                    received.append(message.decode())
                return None
            if args.mode == "Health":
                stub = channel.unary_unary("/grpc.health.v1.Health/Check")
                request = bytes([0x0A, len(args.arg)]) + args.arg.encode() if args.arg else b""
                return list(stub(request, timeout=args.timeout, metadata=metadata))
            stub = channel.unary_unary(method)
            answer, outcome = stub.with_call(args.arg.encode(), timeout=args.timeout, metadata=metadata)
            return answer.decode()

        def one():
            try:
                value = call()
                return {"code": "OK", "value": value, "received": list(received)}
            except grpc.RpcError as error:
                trailing = dict(error.trailing_metadata() or [])
                return {"code": error.code().name, "details": error.details(), "received": list(received),
                        "trailing": {key: value for key, value in trailing.items() if isinstance(value, str)}}

        if args.warm:
            channel.unary_unary("/test.Echo/Unary")(b"warm", metadata=metadata)
        if args.count == 1:
            print(json.dumps(one()))
        else:
            results = [None] * args.count
            def run(index):
                results[index] = one()
            threads = [threading.Thread(target=run, args=(index,)) for index in range(args.count)]
            for thread in threads: thread.start()
            for thread in threads: thread.join()
            print(json.dumps({"calls": results}))
        """#

    /// The server, on a port of its own.
    public static func server(_ arguments: [String] = []) async throws -> PythonPeer {
        try await PythonPeer(script: serverScript, named: "grpc-server.py", arguments: arguments, marker: "grpc on 127.0.0.1:", interpreter: python)
    }

    /// The server script, for a pod's command.
    public static func writeServerScript(in directory: URL) throws -> String {
        let path = directory.appendingPathComponent("grpc-server.py").path
        try serverScript.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Runs the client once; its JSON line, parsed.
    public static func call(_ target: String, _ mode: String, _ argument: String = "", options: [String] = []) async throws -> [String: Any] {
        let directory = GantryProcess.scratchDirectory()
        let script = directory.appendingPathComponent("grpc-client.py").path
        try clientScript.write(toFile: script, atomically: true, encoding: .utf8)
        let result = try await run(python, [script, target, mode, argument] + options, timeout: .seconds(60))
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
            throw TestPKI.Failure(description: "the gRPC client said \(result.output) \(result.error)")
        }
        return object
    }
}
