#!/usr/bin/env python3
"""tunnelbench.py - WebSocket echo, HTTPS upstreams and gRPC unary, gantry beside nginx and Envoy.

Three scenarios, targets interleaved per round (A B C A B C ...), one worker each, no access log:

  ws        WebSocket echo through the proxy: --connections (50) WebSockets, each sending
            --depth (8) masked frames of --size (128) bytes at a time and reading their echo
            before the next batch, for --duration seconds. The backend answers the RFC 6455
            handshake and then echoes bytes (every proxy relays an upgraded connection as bytes,
            so it never parses frames either). Reported: messages/s (one frame each way) and the
            proxy's CPU per message.
  https_up  HTTPS to the upstreams: wrk sends plain HTTP/1.1 to the proxy, which speaks TLS 1.3
            to two nginx backends, verifying their certificate (the harness's CA, name
            `localhost`) and keeping connections alive. Reported: requests/s and the proxy's CPU
            per request, as in proxybench.
  grpc      gRPC unary calls, HTTP/2 both ways: h2load sends POST /test.Echo/Unary (a 7-byte
            length-prefixed message, `content-type: application/grpc`, `te: trailers`) over
            --connections x --streams (50 x 10) h2c streams to the proxy, which keeps HTTP/2
            connections to two h2c backends (gantry `protocol: h2c`, nginx `grpc_pass`, Envoy
            `http2_protocol_options`). The backends are nghttpd answering each call as a gRPC
            server does on the wire: HEADERS, one DATA message, trailers with `grpc-status: 0`
            (nghttpd rather than a gRPC library's server, so that the backends cost little next to
            the proxy). Before measuring, one call through each proxy must bring the trailers back.
            Reported: calls/s and the proxy's CPU per call.

The proxy's CPU is the utime+stime of its process tree over the run (proxybench's measure).
CPU layout: backends and load generator on CPU 0, the proxy on CPU 1.

Example:
  GANTRY_BIN=.build/release/gantry python3 benchmarks/tunnelbench.py --rounds 3 --duration 10
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import proxybench as pb  # noqa: E402  (process registry, /proc helpers, nginx configs, wrk runs)

HOST = pb.HOST
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TARGETS = ["gantry", "nginx", "envoy"]
PORTS = {"ws": {"gantry": 18300, "nginx": 18301, "envoy": 18302},
         "https_up": {"gantry": 18310, "nginx": 18311, "envoy": 18312},
         "grpc": {"gantry": 18330, "nginx": 18331, "envoy": 18332}}
WS_BACKEND_PORT = 18320
TLS_BACKEND_PORTS = [18321, 18322]
GRPC_BACKEND_PORTS = [18323, 18324]
GRPC_PATH = "/test.Echo/Unary"
GRPC_REQUEST = b"\x00\x00\x00\x00\x02hi"
GRPC_RESPONSE = b"\x00\x00\x00\x00\x05hello"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC65B11"


def log(*a):
    print("[tunnelbench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the backends

WS_ECHO = r'''
import asyncio, base64, hashlib, sys
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC65B11"
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.head, self.open = transport, b"", False
    def data_received(self, data):
        if self.open:
            self.transport.write(data)
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        head, rest = self.head.split(b"\r\n\r\n", 1)
        key = next(l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.open = True
        if rest:
            self.transport.write(rest)
async def main():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", int(sys.argv[1]), backlog=4096)
    await server.serve_forever()
asyncio.run(main())
'''


def certificates(work):
    """A CA and a `localhost` certificate it signs, for the TLS backends."""
    ca, ca_key = os.path.join(work, "ca.pem"), os.path.join(work, "ca.key")
    cert, key = os.path.join(work, "backend.pem"), os.path.join(work, "backend.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-x509"] + ec + ["-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=tunnelbench CA"],
                   check=True, capture_output=True)
    csr = os.path.join(work, "backend.csr")
    subprocess.run(["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=localhost"], check=True, capture_output=True)
    ext = pb.write(os.path.join(work, "backend.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "30",
                    "-extfile", ext, "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o644)
    return {"ca": ca, "cert": cert, "key": key}


def tls_backend_conf(d, port, pki):
    os.makedirs(d, exist_ok=True)
    body = """  server {{
    listen {h}:{port} ssl backlog=4096;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{ return 200 "ok\\n"; }}
  }}""".format(h=HOST, port=port, cert=pki["cert"], key=pki["key"])
    return pb.write(os.path.join(d, "nginx.conf"), pb.NGINX_COMMON.format(d=d, body=body))


# ----------------------------------------------------------------------------- the proxies

def grpc_backend(work):
    """nghttpd's document root with the one answer, and its command line for a port."""
    root = os.path.join(work, "grpc-root")
    os.makedirs(os.path.join(root, os.path.dirname(GRPC_PATH.lstrip("/"))), exist_ok=True)
    with open(os.path.join(root, GRPC_PATH.lstrip("/")), "wb") as f:
        f.write(GRPC_RESPONSE)
    return lambda port: ["nghttpd", "--no-tls", "-d", root, "--trailer=grpc-status: 0", "--workers=1", str(port)]


def nginx_conf(d, port, ups, scenario, pki):
    os.makedirs(d, exist_ok=True)
    servers = "\n".join("    server %s;" % u for u in ups)
    listen = "    listen {h}:{port} backlog=4096;".format(h=HOST, port=port)
    if scenario == "grpc":
        listen = "    listen {h}:{port} http2 backlog=4096;\n    http2_max_requests 1000000000;".format(h=HOST, port=port)
        location = "      grpc_pass grpc://backends;"
    elif scenario == "ws":
        location = ('      proxy_pass http://backends;\n      proxy_http_version 1.1;\n'
                    '      proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection "upgrade";\n'
                    '      proxy_read_timeout 300s;')
    else:
        location = ("      proxy_pass https://backends;\n      proxy_http_version 1.1;\n"
                    '      proxy_set_header Connection "";\n      proxy_ssl_verify on;\n'
                    "      proxy_ssl_trusted_certificate %s;\n      proxy_ssl_name localhost;\n"
                    "      proxy_ssl_server_name on;\n      proxy_ssl_protocols TLSv1.2 TLSv1.3;\n"
                    "      proxy_ssl_session_reuse on;") % pki["ca"]
    body = """  upstream backends {{
{servers}
    keepalive 1024;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
  }}
  server {{
{listen}
    location / {{
{location}
    }}
  }}""".format(servers=servers, listen=listen, location=location)
    return pb.write(os.path.join(d, "nginx.conf"), pb.NGINX_COMMON.format(d=d, body=body))


def envoy_conf(d, port, ups, scenario, pki):
    path = pb.envoy_conf(d, port, ups)
    with open(path) as f:
        cfg = json.load(f)
    manager = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    cluster = cfg["static_resources"]["clusters"][0]
    if scenario == "ws":
        manager["upgrade_configs"] = [{"upgrade_type": "websocket"}]
    elif scenario == "grpc":
        manager["codec_type"] = "AUTO"  # HTTP/2 with prior knowledge from the client
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}}
    else:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": "localhost",
                "common_tls_context": {
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                    "validation_context": {
                        "trusted_ca": {"filename": pki["ca"]},
                        "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "localhost"}}]}}}}
    return pb.write(path, json.dumps(cfg, indent=1))


def start_target(name, scenario, ctx):
    port = PORTS[scenario][name]
    backends = {"ws": [WS_BACKEND_PORT], "https_up": TLS_BACKEND_PORTS, "grpc": GRPC_BACKEND_PORTS}[scenario]
    ups = ["%s:%d" % (HOST, p) for p in backends]
    d = os.path.join(ctx["work"], "%s-%s" % (name, scenario))
    os.makedirs(d, exist_ok=True)
    cpus = ctx["cpus"]["proxy"]
    if name == "nginx":
        conf = nginx_conf(d, port, ups, scenario, ctx["pki"])
        proc = pb.REG.start(name, [ctx["nginx"], "-c", conf, "-p", d], cpus=cpus, logdir=d)
    elif name == "envoy":
        conf = envoy_conf(d, port, ups, scenario, ctx["pki"])
        proc = pb.REG.start(name, [ctx["envoy"], "-c", conf, "--concurrency", "1", "--log-level", "error",
                                   "--base-id", str(port)], cpus=cpus, logdir=d)
    else:
        env = {}
        if scenario == "https_up":
            env["GANTRY_UPSTREAM_TLS"] = "{caFile: %s, serverName: localhost}" % ctx["pki"]["ca"]
        if scenario == "grpc":
            env["GANTRY_UPSTREAM_PROTOCOL"] = "h2c"
        proc = pb.REG.start(name, [os.path.join(BENCH_DIR, "gantry-proxy.sh"), str(port), ",".join(ups), d], cpus=cpus, env=env,
                            logdir=d)
    deadline = time.time() + 20
    while time.time() < deadline and pb.port_free(port):
        time.sleep(0.05)
    if pb.port_free(port):
        raise SystemExit("%s (%s) did not start: see %s" % (name, scenario, d))
    return proc, port


# ----------------------------------------------------------------------------- the WebSocket load

WS_CLIENT = r'''
import asyncio, base64, json, os, sys, time
port, connections, depth, size, duration = (int(a) for a in sys.argv[1:6])
mask = b"\x01\x02\x03\x04"
payload = bytes(b ^ mask[i % 4] for i, b in enumerate(os.urandom(size)))
frame = bytes([0x82, 0x80 | 126, size >> 8, size & 0xFF]) + mask + payload if size >= 126 else bytes([0x82, 0x80 | size]) + mask + payload
batch = frame * depth
async def one(counts, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(("GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise SystemExit("no 101: %r" % head[:200])
    while time.monotonic() < stop:
        writer.write(batch)
        await reader.readexactly(len(batch))
        counts[0] += depth
    writer.close()
async def main():
    counts = [0]
    start = time.monotonic()
    await asyncio.gather(*(one(counts, start + duration) for _ in range(connections)))
    print(json.dumps({"messages": counts[0], "seconds": time.monotonic() - start}))
asyncio.run(main())
'''


def run_ws(args, ctx, port, proxy):
    tree = pb.proc_tree(proxy.pid)
    before = pb.cpu_ticks(tree)
    argv = [sys.executable, "-c", WS_CLIENT, str(port), str(args.connections), str(args.depth), str(args.size), str(args.duration)]
    if ctx["cpus"]["wrk"] is not None:
        argv = ["taskset", "-c", ctx["cpus"]["wrk"]] + argv
    out = subprocess.run(argv, capture_output=True, timeout=args.duration + 60)
    after = pb.cpu_ticks(pb.proc_tree(proxy.pid))
    try:
        r = json.loads(out.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("the WebSocket client failed: %s" % out.stderr.decode()[-2000:])
    cpu = (after - before) / pb.CLK_TCK
    return {"messages_per_s": round(r["messages"] / r["seconds"]), "proxy_cpu_us_per_msg": round(1e6 * cpu / max(1, r["messages"]), 2),
            "proxy_cpu_pct": round(100.0 * cpu / r["seconds"], 1)}


def run_https_up(args, ctx, port, proxy):
    r, _ = pb.run_wrk(args, {"wrk": ctx["wrk"]}, port, "/", args.connections, args.duration, None, ctx["cpus"]["wrk"], proxy.pid,
                      [], measure=True)
    if r.get("non2xx") or r.get("err_connect") or r.get("err_read"):
        raise SystemExit("https_up: errors through the proxy: %s" % {k: r[k] for k in ("non2xx", "err_connect", "err_read")})
    return {"requests_per_s": round(r["rps"]) if r.get("rps") else None, "proxy_cpu_us_per_req": r.get("proxy_cpu_us_per_req"),
            "p99_ms": r.get("p99"), "proxy_cpu_pct": r.get("proxy_cpu_pct")}


# ----------------------------------------------------------------------------- the gRPC load

def grpc_argv(args, port, duration=None, requests=None):
    body = os.path.join(args.work, "grpc-request.bin")
    if not os.path.exists(body):
        with open(body, "wb") as f:
            f.write(GRPC_REQUEST)
    argv = ["h2load", "-c%d" % args.connections, "-m%d" % args.streams, "-d", body, "-H", "content-type: application/grpc",
            "-H", "te: trailers"]
    argv += ["-D", str(duration)] if duration else ["-n", str(requests)]
    return argv + ["http://%s:%d%s" % (HOST, port, GRPC_PATH)]


def check_grpc(port, name):
    """One call through the proxy: the answer's message and its trailers must come back."""
    request = os.path.join(tempfile.mkdtemp(prefix="grpc-check-"), "request.bin")
    with open(request, "wb") as f:
        f.write(GRPC_REQUEST)
    out = subprocess.run(["nghttp", "-v", "-d", request, "-H", "content-type: application/grpc", "-H", "te: trailers",
                          "http://%s:%d%s" % (HOST, port, GRPC_PATH)], capture_output=True, timeout=10).stdout.decode("latin-1")
    if "grpc-status: 0" not in out or "recv DATA frame <length=10" not in out:
        raise SystemExit("grpc: %s did not bring the message and its trailers back:\n%s" % (name, out[-3000:]))


def run_grpc(args, ctx, port, proxy):
    from tlsbench import parse_h2load
    argv = grpc_argv(args, port, duration=args.duration)
    if ctx["cpus"]["wrk"] is not None:
        argv = ["taskset", "-c", ctx["cpus"]["wrk"]] + argv
    before = pb.cpu_ticks(pb.proc_tree(proxy.pid))
    out = subprocess.run(argv, capture_output=True, timeout=args.duration + 60).stdout.decode()
    after = pb.cpu_ticks(pb.proc_tree(proxy.pid))
    r = parse_h2load(out)
    if not r["requests"] or r["failed"] or r["errored"] or r["non2xx"]:
        raise SystemExit("grpc: errors through the proxy: %s" % out[-2000:])
    cpu = (after - before) / pb.CLK_TCK
    return {"calls_per_s": round(r["rps"]), "proxy_cpu_us_per_call": round(1e6 * cpu / r["requests"], 2),
            "mean_ms": r["lat_mean"], "proxy_cpu_pct": round(100.0 * cpu / args.duration, 1)}


# ----------------------------------------------------------------------------- main

def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", default="ws,https_up,grpc")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--streams", type=int, default=10, help="grpc: concurrent streams per connection")
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wrk-timeout", type=int, default=5)
    ap.add_argument("--backends", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    if "gantry" in targets and not os.environ.get("GANTRY_BIN"):
        log("GANTRY_BIN is not set: gantry skipped")
        targets.remove("gantry")
    work = tempfile.mkdtemp(prefix="tunnelbench-")
    args.work = work
    ctx = {"work": work, "cpus": pb.layout_cpus("split"), "pki": certificates(work), "nginx": "/usr/sbin/nginx",
           "envoy": pb.find_envoy(), "wrk": "wrk"}
    if "envoy" in targets and not ctx["envoy"]:
        log("no envoy binary: envoy skipped")
        targets.remove("envoy")
    results = {}
    try:
        backend_cpu = ctx["cpus"]["backend"]
        pb.REG.start("ws-echo", [sys.executable, "-c", WS_ECHO, str(WS_BACKEND_PORT)], cpus=backend_cpu, logdir=work)
        for port in TLS_BACKEND_PORTS:
            conf = tls_backend_conf(os.path.join(work, "tls-backend-%d" % port), port, ctx["pki"])
            pb.REG.start("tls-backend-%d" % port, [ctx["nginx"], "-c", conf, "-p", os.path.dirname(conf)], cpus=backend_cpu, logdir=work)
        grpc_command = grpc_backend(work)
        for port in GRPC_BACKEND_PORTS:
            pb.REG.start("grpc-backend-%d" % port, grpc_command(port), cpus=backend_cpu, logdir=work)
        time.sleep(1.0)
        runs = {"ws": run_ws, "https_up": run_https_up, "grpc": run_grpc}
        for scenario in args.scenarios.split(","):
            running = {name: start_target(name, scenario, ctx) for name in targets}
            if scenario == "grpc":
                for name, (_, port) in running.items():
                    check_grpc(port, name)
            for round_index in range(args.rounds):
                for name in targets:
                    proxy, port = running[name]
                    r = runs[scenario](args, ctx, port, proxy)
                    results.setdefault(scenario, {}).setdefault(name, []).append(r)
                    log(scenario, "round", round_index + 1, name, r)
            for proxy, _ in running.values():
                proxy.stop()
    finally:
        pb.REG.stop_all()
    report(results, args, ctx)


def report(results, args, ctx):
    lines = ["# tunnelbench: WebSocket echo, HTTPS upstreams and gRPC unary", "",
             "`%s` — %d rounds of %d s, interleaved; medians. One worker each; backends and load generator on CPU 0, the proxy on CPU 1."
             % (" ".join(shlex.quote(a) for a in sys.argv), args.rounds, args.duration), ""]
    units = {"ws": ("messages_per_s", "proxy_cpu_us_per_msg", "messages/s", "CPU µs/message"),
             "https_up": ("requests_per_s", "proxy_cpu_us_per_req", "requests/s", "CPU µs/request"),
             "grpc": ("calls_per_s", "proxy_cpu_us_per_call", "calls/s", "CPU µs/call")}
    summary = {}
    for scenario, by_target in results.items():
        rate_key, cpu_key, rate_name, cpu_name = units[scenario]
        lines += ["## %s" % scenario, "", "| target | %s | %s | ÷ nginx | ÷ envoy |" % (rate_name, cpu_name), "|---|---:|---:|---:|---:|"]
        medians = {name: (median([r[rate_key] for r in runs]), median([r[cpu_key] for r in runs])) for name, runs in by_target.items()}
        summary[scenario] = medians
        for name, (rate, cpu) in medians.items():
            ratio = lambda peer: ("%.2f" % (cpu / medians[peer][1])) if peer in medians and cpu and medians[peer][1] else "-"
            lines.append("| %s | %s | %s | %s | %s |" % (name, rate, cpu, ratio("nginx"), ratio("envoy")))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    out = args.out
    if out:
        os.makedirs(out, exist_ok=True)
        pb.write(os.path.join(out, "tunnel.md"), text + "\n")
        pb.write(os.path.join(out, "tunnel.json"), json.dumps({"results": results, "medians": summary}, indent=1))


if __name__ == "__main__":
    main()
