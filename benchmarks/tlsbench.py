#!/usr/bin/env python3
"""tlsbench.py - HTTPS / HTTP/2 throughput and 10,000-idle-connection memory, side by side.

Compares gantry, nginx, HAProxy and Envoy, configured as equivalently as their configs allow:
one worker each, TLS termination with the same ECDSA P-256 certificate (generated into the
workdir), TLS 1.2 + 1.3, ALPN h2,http/1.1, HTTP/1.1 keep-alive to two plain-HTTP nginx
upstreams, round robin, no access log, the same high connection limits and 300 s idle
timeouts. nginx_fwd, haproxy_fwd and envoy_fwd (proxybench's) also make or keep an X-Request-ID,
send it upstream and return it, and set X-Forwarded-For, -Proto and -Host, as gantry does; each
target's check records what reached the backend, and a `_fwd` target must send all four.

Scenarios (in this order, targets interleaved per round A B C D A B C D ...):
  https1   HTTPS, HTTP/1.1, GET / (3-byte body), --connections (50) keep-alive connections, wrk.
           Handshakes are amortised: each connection does one handshake, then thousands of
           requests, so this measures TLS record encryption + proxying, not handshakes.
  https2   HTTP/2 over TLS (h2 chosen by ALPN), GET /, --connections x --streams (50 x 10), h2load.
           Same amortisation. h2load prints no latency percentiles, only min/max/mean/sd of
           "time for request"; p50/p99 come from h2load's per-request --log-file instead.
  idle10k  A fresh proxy per round with a plain-HTTP listener: baseline RSS, then
           --idle-connections (10,000) keep-alive connections each send one GET and read the
           response, then stay open and idle; RSS of the proxy's process tree is read again.
           Reported: baseline, with-idle RSS and (difference / connections) in KiB.
  idletls  The same over TLS (HTTP/1.1 chosen by ALPN): each connection shakes hands, sends one
           GET and reads the response, then stays open and idle. Opened one after another.

Measured per https run (the model is proxybench.py, whose helpers this script imports):
  requests/s, latency, proxy CPU us/request (utime+stime ticks of the proxy's whole process tree
  during the run / requests completed), peak RSS of the proxy tree (VmRSS sampled every 0.2 s),
  VmHWM, and "foreign CPU" (machine busy time used by processes that are not ours).

CPU layout (--layout, as in proxybench): shared (default) = backends on CPU 0, proxy and load
generator on CPU 1; split = load generator on CPU 0 with the backends; none = no pinning.

gantry is started by --gantry-cmd (default: gantry-proxy.sh next to this file, which needs
GANTRY_BIN) with GANTRY_TLS_CERT / GANTRY_TLS_KEY for the TLS listener and GANTRY_LIMITS /
GANTRY_IDLE for the limits; it is skipped when GANTRY_BIN is not set.

Example:
  python3 benchmarks/tlsbench.py --targets nginx,haproxy,envoy --rounds 1 --duration 3
"""

import argparse
import http.client
import json
import os
import re
import resource
import select
import selectors
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True   # no __pycache__ left in benchmarks/ by the import below
import proxybench as pb  # noqa: E402  (the shared harness: process registry, /proc helpers, nginx backends)

HOST = pb.HOST
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
# The `_fwd` targets are proxybench's: the peer doing gantry's per-request work as well (the
# request ID and X-Forwarded-*). They run the https scenarios only; their idle connections
# cost what their bare twins' do.
TARGETS = ["nginx", "haproxy", "envoy", "gantry"] + list(pb.FORWARDING_TARGETS)
# Own port ranges, so that a proxybench run's ports (18100-18119) are not in the way.
TLS_PORTS = {"nginx": 18200, "haproxy": 18201, "envoy": 18202, "gantry": 18203,
             "nginx_fwd": 18204, "haproxy_fwd": 18205, "envoy_fwd": 18206}
PLAIN_PORTS = {"nginx": 18210, "haproxy": 18211, "envoy": 18212, "gantry": 18213,
               "nginx_fwd": 18214, "haproxy_fwd": 18215, "envoy_fwd": 18216}

# The same limits for every target (and both phases), high enough for 10k connections from
# one client address, and idle timeouts long enough that nothing is closed while we measure.
MAX_CONNS = 20000
IDLE_TIMEOUT = "300s"
GANTRY_LIMITS = "{maxConnectionsPerClient: %d, newConnectionsPerSecondPerClient: 100000}" % MAX_CONNS
PROXY_NOFILE = 65536            # `ulimit -n` the proxies get (capped by the hard limit, see proxy_nofile)
GANTRY_GOAL_MIB = 200           # gantry must stay under this with 10k idle connections

LOADGEN = []                    # running wrk/h2load processes, killed on any exit
HANG_GRACE_S = 20               # a load generator still running this long after its duration is killed


def log(*a):
    print("[tlsbench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def quote(argv):
    return " ".join(shlex.quote(a) for a in argv)


# ----------------------------------------------------------------------------- certificate

def make_certificate(work):
    """One self-signed ECDSA P-256 certificate for every target. HAProxy wants certificate and
    key in one PEM file, so that is written too."""
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    combined = os.path.join(work, "cert+key.pem")
    with open(combined, "w") as out:
        for path in (cert, key):
            with open(path) as f:
                out.write(f.read())
    os.chmod(key, 0o644)   # nginx/haproxy read it as root, but keep it readable for any worker user
    return {"cert": cert, "key": key, "combined": combined}


# ----------------------------------------------------------------------------- proxy configs

def nginx_version(nginx_bin):
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", pb.version_of([nginx_bin, "-v"]))
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def nginx_conf(d, port, ups, tls, nginx_ver, forwarding=False):
    """proxybench's nginx proxy (keepalive 1024 to the upstreams, 300 s keep-alive, 20000
    worker_connections, worker_rlimit_nofile) plus an optional TLS listener. nginx < 1.25.1
    has no `http2 on;`: HTTP/2 is a parameter of `listen` there."""
    os.makedirs(d, exist_ok=True)
    servers = "\n".join("    server %s;" % u for u in ups)
    listen, extra = "listen %s:%d" % (HOST, port), ""
    if tls:
        if nginx_ver >= (1, 25, 1):
            listen += " ssl"
            extra = "    http2 on;\n"
        else:
            listen += " ssl http2"
        extra += ("    ssl_certificate %s;\n    ssl_certificate_key %s;\n"
                  "    ssl_protocols TLSv1.2 TLSv1.3;\n") % (tls["cert"], tls["key"])
    body = """  upstream backends {{
{servers}
    keepalive 1024;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
  }}{request_id_map}
  server {{
    {listen} backlog=4096;
{extra}    location / {{
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";{forwarding_lines}
    }}
  }}""".format(servers=servers, listen=listen, extra=extra,
               request_id_map=pb.NGINX_REQUEST_ID_MAP if forwarding else "",
               forwarding_lines=pb.NGINX_FORWARDING if forwarding else "")
    return pb.write(os.path.join(d, "nginx.conf"), pb.NGINX_COMMON.format(d=d, body=body))


def haproxy_conf(d, port, ups, tls, forwarding=False):
    """proxybench's HAProxy config with maxconn 20000 in global and defaults (the frontend's
    default would be lower) and, for TLS, `ssl crt ... alpn h2,http/1.1` on the bind line."""
    os.makedirs(d, exist_ok=True)
    # HAProxy reserves 2 fds per maxconn (client + server side) and refuses to start when
    # `ulimit -n` is below that. Where the hard limit cannot be raised (a container without
    # CAP_SYS_RESOURCE), `no strict-limits` makes that a warning: idle keep-alive clients share
    # a few pooled server connections, so 10k clients need ~10k fds, not 20k.
    relax = "  no strict-limits\n" if proxy_nofile() < 2 * MAX_CONNS + 100 else ""
    bind = "bind %s:%d" % (HOST, port)
    if tls:
        bind += " ssl crt %s alpn h2,http/1.1 ssl-min-ver TLSv1.2 ssl-max-ver TLSv1.3" % tls["combined"]
    servers = "\n".join("  server s%d %s" % (i, u) for i, u in enumerate(ups))
    txt = """global
  nbthread 1
{relax}  maxconn {maxconn}
  # no 'log' line: no logging at all

defaults
  mode http
  maxconn {maxconn}
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  http-reuse always

frontend fe
  {bind}
{forwarding}  default_backend be

backend be
  balance roundrobin
{servers}
""".format(maxconn=MAX_CONNS, relax=relax, bind=bind, servers=servers,
           forwarding=pb.HAPROXY_FORWARDING if forwarding else "")
    return pb.write(os.path.join(d, "haproxy.cfg"), txt)


def envoy_conf(d, port, ups, tls, forwarding=False):
    """proxybench's Envoy config (one worker via --concurrency 1, round robin, circuit breakers
    out of the way). With TLS: a DownstreamTlsContext offering h2,http/1.1 by ALPN and
    codec_type AUTO, which picks the codec from the negotiated protocol. Envoy's default idle
    timeout (1 h) and connection limits (none) need no change."""
    os.makedirs(d, exist_ok=True)
    with open(pb.envoy_conf(d, port, ups, forwarding=forwarding)) as f:
        cfg = json.load(f)
    chain = cfg["static_resources"]["listeners"][0]["filter_chains"][0]
    if tls:
        chain["filters"][0]["typed_config"]["codec_type"] = "AUTO"
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "tls_params": {"tls_minimum_protocol_version": "TLSv1_2",
                                   "tls_maximum_protocol_version": "TLSv1_3"},
                    "tls_certificates": [{"certificate_chain": {"filename": tls["cert"]},
                                          "private_key": {"filename": tls["key"]}}],
                    "alpn_protocols": ["h2", "http/1.1"],
                }}}
    return pb.write(os.path.join(d, "envoy.json"), json.dumps(cfg, indent=1))


def proxy_nofile():
    """PROXY_NOFILE, or the hard limit if that is lower: without CAP_SYS_RESOURCE (in a
    container, say) the hard limit cannot be raised, not even by root."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return PROXY_NOFILE if hard == resource.RLIM_INFINITY else min(PROXY_NOFILE, hard)


def with_nofile(argv):
    """Start argv with a high `ulimit -n`: 10k client connections plus upstream connections
    do not fit in a default 1024 limit. `exec` keeps the pid, so the pid is the proxy's."""
    return ["bash", "-c", 'ulimit -n %d && exec "$@"' % proxy_nofile(), "bash"] + list(argv)


def start_target(name, tls, ctx):
    """Starts one target on its TLS port (tls = certificate paths) or its plain port (tls=None).
    Returns (port, Managed)."""
    port = (TLS_PORTS if tls else PLAIN_PORTS)[name]
    label = "%s-%s" % (name, "tls" if tls else "plain")
    d = os.path.join(ctx["work"], label)
    os.makedirs(d, exist_ok=True)
    bins, ups, env, conf = ctx["bins"], ctx["ups"], None, None
    forwarding, kind = pb.forwards(name), name.removesuffix("_fwd")
    if kind == "nginx":
        conf = nginx_conf(d, port, ups, tls, ctx["nginx_ver"], forwarding)
        argv = [bins["nginx"], "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log")]
    elif kind == "haproxy":
        conf = haproxy_conf(d, port, ups, tls, forwarding)
        argv = [bins["haproxy"], "-db", "-f", conf]
    elif kind == "envoy":
        conf = envoy_conf(d, port, ups, tls, forwarding)
        argv = [bins["envoy"], "-c", conf, "--concurrency", "1", "--disable-hot-restart", "--log-level", "warn"]
    else:
        argv = shlex.split(ctx["gantry_cmd"].format(port=port, upstreams=",".join(ups), workdir=d))
        env = {"GANTRY_LIMITS": GANTRY_LIMITS, "GANTRY_IDLE": IDLE_TIMEOUT}
        if tls:
            env.update(GANTRY_TLS_CERT=tls["cert"], GANTRY_TLS_KEY=tls["key"])
        conf = os.path.join(d, "gantry-bench-%d.yaml" % port)   # written by gantry-proxy.sh
    m = pb.REG.start(label, with_nofile(argv), cpus=ctx["cpus"]["proxy"], env=env, logdir=ctx["logdir"])
    ctx["meta"]["configs"][label] = conf
    ctx["meta"]["commands"][label] = " ".join(["%s=%s" % kv for kv in sorted((env or {}).items())] + [quote(m.argv)])
    return port, m


# ----------------------------------------------------------------------------- readiness and checks

def client_tls_context(alpn):
    """Our own certificate is self-signed: no verification, we only need the connection."""
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    c.set_alpn_protocols(alpn)
    return c


def https_get(port, conn=None, timeout=3.0):
    c = conn or http.client.HTTPSConnection(HOST, port, timeout=timeout,
                                            context=client_tls_context(["http/1.1"]))
    c.request("GET", "/")
    r = c.getresponse()
    return c, r.status, r.getheader("X-Backend"), r.read()


def wait_ready(port, proc, tls, timeout):
    """Polls until the target answers GET / with 200 (over TLS without verification for TLS
    targets), as proxybench's wait_ready does."""
    if not tls:
        return pb.wait_ready(port, proc, timeout)
    t0, last = time.time(), None
    while time.time() - t0 < timeout:
        if not proc.alive():
            raise RuntimeError("%s exited early (rc=%s), see %s" % (proc.name, proc.p.returncode, proc.logpath))
        try:
            c, status, _, _ = https_get(port, timeout=1.0)
            c.close()
            if status == 200:
                return
            last = "status %s" % status
        except (OSError, http.client.HTTPException) as e:
            last = str(e)
        time.sleep(0.1)
    raise RuntimeError("port %d not ready after %.0fs (%s)" % (port, timeout, last))


def tls_handshake_info(port):
    """What a client offering h2,http/1.1 gets: protocol chosen by ALPN, TLS version, cipher
    (Python uses OpenSSL's default cipher order, as wrk does)."""
    with socket.create_connection((HOST, port), timeout=3) as raw:
        with client_tls_context(["h2", "http/1.1"]).wrap_socket(raw, server_hostname="localhost") as s:
            return {"alpn": s.selected_alpn_protocol(), "version": s.version(), "cipher": s.cipher()[0]}


def forwarded_check(name, port):
    """proxybench's forwarding check over HTTPS: the protocol the backend hears is `https`."""
    conn = http.client.HTTPSConnection(HOST, port, timeout=3, context=client_tls_context(["http/1.1"]))
    try:
        conn.request("GET", "/forwarded")
        r = conn.getresponse()
        body = r.read()
    finally:
        conn.close()
    return pb.forwarding_check(name, r.status, body, r.getheader("X-Request-ID"), "https", port)


def check_https_target(name, port, m, ctx):
    """Before any load: ALPN must choose h2, 10 HTTP/1.1 requests on one TLS connection must
    return the backend's body from both backends, a short h2load run must succeed over h2, and
    the port must be listened on by this target only (SO_REUSEPORT could hide a stranger)."""
    chk, ok = tls_handshake_info(port), True
    ok &= chk["alpn"] == "h2"
    seen, conn = {}, None
    for _ in range(10):
        conn, status, tag, body = https_get(port, conn)
        ok &= status == 200 and body == b"ok\n"
        seen[tag] = seen.get(tag, 0) + 1
    conn.close()
    chk["backend_hits_10_reqs_one_conn"] = seen
    if len(seen) < 2:
        log("WARNING: %s sent 10 requests on one connection to %s only: no round-robin?" % (name, seen))
    out = subprocess.run(["h2load", "-n", "20", "-c", "1", "-m", "1", "https://%s:%d/" % (HOST, port)],
                         capture_output=True, timeout=30).stdout.decode(errors="replace")
    h2 = parse_h2load(out)
    chk["h2load_20_requests"] = {"succeeded": h2["succeeded"], "protocol": h2["protocol"],
                                 "status_2xx": h2["status_2xx"]}
    ok &= h2["succeeded"] == 20 and h2["protocol"] == "h2"
    chk["forwarded"] = forwarded_check(name, port)
    ok &= chk["forwarded"]["ok"]
    owners = pb.listeners(port)
    strangers = sorted({p for ps in owners.values() for p in ps} - set(pb.proc_tree(m.pid)))
    chk["listen_sockets"] = len(owners)
    ok &= bool(owners) and not strangers
    chk["ok"] = bool(ok)
    return chk


def start_checked(names, tls, ctx):
    """Starts targets, waits for them, checks them; a target that fails is dropped and the
    reason recorded, the others go on. Returns {name: (port, Managed)}."""
    started = {}
    for name in names:
        try:
            started[name] = start_target(name, tls, ctx)
        except Exception as e:
            log("could not start %s: %r" % (name, e))
            ctx["skipped"][name if tls else name + " (idle10k)"] = "could not start: %r" % e
    ready = {}
    for name, (port, m) in started.items():
        try:
            wait_ready(port, m, tls, ctx["args"].ready_timeout)
            if tls:
                chk = check_https_target(name, port, m, ctx)
                ctx["meta"]["checks"][name] = chk
                log("check %-8s %s" % (name, chk))
                if not chk["ok"]:
                    raise RuntimeError("functional check failed: %s" % chk)
            ready[name] = (port, m)
        except Exception as e:
            log("dropping %s: %s" % (name, e))
            log("--- %s log tail:\n%s" % (name, log_tail(m.logpath)))
            ctx["skipped"][name if tls else name + " (idle10k)"] = str(e)
            m.stop()
            keep_log(ctx, m)
    return ready


def log_tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


# ----------------------------------------------------------------------------- load generators

def wrk_argv(args, port, duration):
    return ["wrk", "-t%d" % args.threads, "-c%d" % args.connections, "-d%ds" % duration, "--latency",
            "--timeout", "%ds" % args.client_timeout, "https://%s:%d/" % (HOST, port)]


def h2load_argv(args, port, duration, log_file=None):
    argv = ["h2load", "-t%d" % args.threads, "-c%d" % args.connections, "-m%d" % args.streams,
            "-D", str(duration), "-T", str(args.client_timeout)]
    if log_file:
        argv += ["--log-file=%s" % log_file]
    return argv + ["https://%s:%d/" % (HOST, port)]


H2_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def h2_ms(tok):
    m = re.match(r"^([\d.]+)(us|ms|s)$", tok)
    return float(m.group(1)) * H2_UNIT_MS[m.group(2)] if m else None


def parse_h2load(out):
    r = {"rps": None, "requests": None, "succeeded": None, "failed": None, "errored": None, "timeout": None,
         "status_2xx": None, "non2xx": None, "protocol": None, "tls_protocol": None, "cipher": None,
         "lat_min": None, "lat_max": None, "lat_mean": None, "lat_sd": None}
    for line in out.splitlines():
        s = line.strip()
        m = re.match(r"^finished in [\d.]+\w*, ([\d.]+) req/s", s)
        if m:
            r["rps"] = float(m.group(1))
        m = re.match(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored, (\d+) timeout", s)
        if m:
            r["requests"], r["succeeded"], r["failed"], r["errored"], r["timeout"] = (
                int(m.group(3)), int(m.group(4)), int(m.group(5)), int(m.group(6)), int(m.group(7)))
        m = re.match(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", s)
        if m:
            r["status_2xx"], r["non2xx"] = int(m.group(1)), int(m.group(3)) + int(m.group(4))
        m = re.match(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", s)
        if m:
            r["lat_min"], r["lat_max"], r["lat_mean"], r["lat_sd"] = (h2_ms(x) for x in m.groups())
        for key, prefix in (("protocol", "Application protocol:"), ("tls_protocol", "TLS Protocol:"),
                            ("cipher", "Cipher:")):
            if s.startswith(prefix):
                r[key] = s[len(prefix):].strip()
    return r


def h2load_log_percentiles(path):
    """h2load prints no percentiles; its --log-file has one line per request:
    start (us since epoch) <TAB> status <TAB> duration (us)."""
    durations = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    durations.append(int(parts[2]))
    except OSError:
        return {}
    if not durations:
        return {}
    durations.sort()

    def pct(p):
        return durations[min(len(durations) - 1, int(p / 100.0 * len(durations)))] / 1000.0

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "logged_requests": len(durations)}


def run_load(argv, cpus, duration, proxy_pid, measure=True):
    """Runs one load generator to completion and measures the proxy around it: CPU ticks of its
    whole process tree, peak RSS (sampled) and VmHWM, and CPU used by processes that are not
    ours (another build on the box makes the figures suspect). Returns (measurements, output)."""
    tool = argv[0]
    if cpus is not None:
        argv = ["taskset", "-c", cpus] + argv
    ptree = pb.proc_tree(proxy_pid)
    ours = sorted({p for m in list(pb.REG.procs) for p in pb.proc_tree(m.pid)} | {os.getpid()})
    p_cpu0, o_cpu0 = pb.cpu_ticks(ptree), pb.cpu_ticks(ours)
    ru0, ct0 = resource.getrusage(resource.RUSAGE_CHILDREN), pb.cpu_times()
    sampler = pb.RssSampler(proxy_pid)
    sampler.start()
    t0 = time.time()
    with pb.critical():
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        LOADGEN.append(p)
    hung = False
    try:
        # h2load 1.52 never exits when its duration ends while some clients are still in their
        # TLS handshake (seen with nginx at -c 1000 -D 1, and with a slow debug gantry at -c 50
        # -D 1): kill it after a grace period rather than wait for ever; its figures are lost.
        out, _ = p.communicate(timeout=duration + HANG_GRACE_S)
    except subprocess.TimeoutExpired:
        hung = True
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
    except BaseException:   # Ctrl-C / SIGTERM: the load generator goes too
        os.killpg(p.pid, signal.SIGKILL)
        raise
    LOADGEN.remove(p)
    wall = time.time() - t0
    ru1, ct1 = resource.getrusage(resource.RUSAGE_CHILDREN), pb.cpu_times()
    p_cpu1, o_cpu1 = pb.cpu_ticks(ptree), pb.cpu_ticks(ours)
    peak_kb = sampler.finish()
    r = {"cmd": quote(argv), "rc": p.returncode, "wall_s": round(wall, 2), "hung": hung}
    if hung:
        log("WARNING: %s did not exit %d s after its duration; killed (run lost)" % (tool, HANG_GRACE_S))
    if measure:
        client_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        busy_s = sum(ct1[c][0] - ct0[c][0] for c in ct1 if c in ct0) / pb.CLK_TCK
        ours_s = (o_cpu1 - o_cpu0) / pb.CLK_TCK + client_s
        r.update({
            "proxy_cpu_s": (p_cpu1 - p_cpu0) / pb.CLK_TCK,
            "proxy_cpu_pct": round(100.0 * (p_cpu1 - p_cpu0) / pb.CLK_TCK / wall, 1),
            "client_cpu_pct": round(100.0 * client_s / wall, 1),
            "foreign_cpu_pct": round(100.0 * (busy_s - ours_s) / max(wall, 1e-6), 1),
            "proxy_rss_peak_mib": round(peak_kb / 1024.0, 1),
            "proxy_hwm_mib": round(pb.tree_hwm_kb(proxy_pid) / 1024.0, 1),
        })
    return r, out.decode(errors="replace")


def run_https1(args, ctx, port, pid, duration, measure=True):
    r, out = run_load(wrk_argv(args, port, duration), ctx["cpus"]["client"], duration, pid, measure)
    w = pb.parse_wrk(out)
    r.update({k: w[k] for k in ("rps", "requests", "p50", "p90", "p99", "lat_avg", "non2xx")})
    r["errors"] = w["err_connect"] + w["err_read"] + w["err_write"] + w["err_timeout"]
    return r, out


def run_https2(args, ctx, port, pid, duration, measure=True):
    log_file = os.path.join(ctx["work"], "h2load-requests.log") if (measure and args.h2_percentiles) else None
    r, out = run_load(h2load_argv(args, port, duration, log_file), ctx["cpus"]["client"], duration, pid, measure)
    h = parse_h2load(out)
    r.update(h)
    r["errors"] = sum(h[k] or 0 for k in ("failed", "errored", "timeout"))
    r["lat_avg"] = h["lat_mean"]
    if log_file:
        r.update(h2load_log_percentiles(log_file))
        os.unlink(log_file)
    return r, out


def finish_run(r):
    """CPU us per request: proxy CPU during the run / requests completed by the client."""
    if r.get("requests") and "proxy_cpu_s" in r:
        r["proxy_cpu_us_per_req"] = round(1e6 * r["proxy_cpu_s"] / r["requests"], 2)
    return r


# ----------------------------------------------------------------------------- idle connections

def response_complete(buf):
    """True once buf holds a whole HTTP/1.1 response (Content-Length or chunked body)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin-1").lower()
    m = re.search(r"\r\ncontent-length:\s*(\d+)", head)
    if m:
        return len(buf) >= end + 4 + int(m.group(1))
    if "transfer-encoding: chunked" in head:
        return buf.endswith(b"0\r\n\r\n")
    return True


def open_idle_connections(port, n, inflight, timeout):
    """Opens n keep-alive connections from one process with non-blocking sockets; each sends one
    GET and reads the whole response, then stays open. At most `inflight` connections are
    connecting or waiting for their response at once, so that no listen backlog overflows (a
    dropped SYN costs a 1 s retransmit). Returns (open sockets, failures, non-200 responses)."""
    request = b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST.encode(), port)
    sel = selectors.DefaultSelector()
    done, failed, bad_status, started = [], 0, 0, 0
    deadline = time.time() + timeout

    def fail(s):
        nonlocal failed
        sel.unregister(s)
        s.close()
        failed += 1

    def sent_request(s):
        try:
            return not s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) and s.send(request) == len(request)
        except OSError:
            return False

    try:
        while len(done) + failed < n and time.time() < deadline:
            while started < n and len(sel.get_map()) < inflight:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((HOST, port))          # EINPROGRESS; completion shows as writable
                sel.register(s, selectors.EVENT_WRITE, bytearray())
                started += 1
            for key, events in sel.select(timeout=0.5):
                s, buf = key.fileobj, key.data
                if events & selectors.EVENT_WRITE:
                    if sent_request(s):
                        sel.modify(s, selectors.EVENT_READ, buf)
                    else:
                        fail(s)
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    fail(s)
                    continue
                buf += data
                if response_complete(buf):
                    sel.unregister(s)
                    if not buf.startswith(b"HTTP/1.1 200"):
                        bad_status += 1
                    done.append(s)
    except BaseException:   # Ctrl-C while opening: leave no half-open sockets or TIME_WAITs behind
        close_with_reset(done + [k.fileobj for k in sel.get_map().values()])
        raise
    for key in list(sel.get_map().values()):    # timed out
        fail(key.fileobj)
    sel.close()
    return done, failed + (n - started), bad_status


def count_still_open(socks):
    """A socket the proxy closed reads as EOF (or reset); an idle open one would block. A TLS
    socket cannot be peeked at: one the proxy closed has something to read (its close_notify, FIN
    or reset), an idle open one has nothing."""
    tls = [s for s in socks if isinstance(s, ssl.SSLSocket)]
    if tls:
        poller = select.poll()
        for s in tls:
            poller.register(s, select.POLLIN)
        return len(tls) - len(poller.poll(0))
    still = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                still += 1      # unexpected data, but the connection is open
        except BlockingIOError:
            still += 1
        except OSError:
            pass
    return still


def close_with_reset(socks):
    """SO_LINGER 0: close with RST instead of FIN, so 10k client ports per round do not sit in
    TIME_WAIT and run the ephemeral port range dry over the rounds."""
    linger = struct.pack("ii", 1, 0)
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        s.close()


def open_idle_tls_connections(port, n, timeout):
    """Opens n TLS keep-alive connections one after another (HTTP/1.1 by ALPN); each sends one
    GET and reads the whole response, then stays open. Returns (open sockets, failures,
    non-200 responses)."""
    request = b"GET / HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST.encode(), port)
    context = client_tls_context(["http/1.1"])
    done, failed, bad_status = [], 0, 0
    deadline = time.time() + timeout
    try:
        while len(done) + failed < n and time.time() < deadline:
            try:
                raw = socket.create_connection((HOST, port), timeout=5)
                # Without it the request waits for the ACK of the client's Finished (Nagle).
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s = context.wrap_socket(raw, server_hostname="localhost")
                s.sendall(request)
                buf = b""
                while not response_complete(buf):
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    buf += data
            except OSError:
                failed += 1
                continue
            if not buf.startswith(b"HTTP/1.1 200"):
                bad_status += 1
            done.append(s)
    except BaseException:
        close_with_reset(done)
        raise
    return done, failed + (n - len(done) - failed), bad_status


def measure_idle(args, name, port, m, tls=False):
    """Baseline RSS of a fresh proxy (after 20 requests, so upstream pools exist), then RSS with
    --idle-connections open and idle for --idle-settle seconds."""
    if tls:
        c = http.client.HTTPSConnection(HOST, port, timeout=3, context=client_tls_context(["http/1.1"]))
    else:
        c = http.client.HTTPConnection(HOST, port, timeout=3)
    for _ in range(20):
        c.request("GET", "/")
        c.getresponse().read()
    c.close()
    time.sleep(1.0)
    base_kb = pb.tree_rss_kb(m.pid)
    t0 = time.time()
    if tls:
        socks, failed, bad = open_idle_tls_connections(port, args.idle_connections, args.idle_timeout)
    else:
        socks, failed, bad = open_idle_connections(port, args.idle_connections, args.idle_inflight, args.idle_timeout)
    open_s = time.time() - t0
    try:
        time.sleep(args.idle_settle)
        idle_kb = pb.tree_rss_kb(m.pid)
        hwm_kb = pb.tree_hwm_kb(m.pid)
        still = count_still_open(socks)
    finally:
        close_with_reset(socks)
    n = len(socks)
    r = {"baseline_rss_mib": round(base_kb / 1024.0, 1), "idle_rss_mib": round(idle_kb / 1024.0, 1),
         "hwm_mib": round(hwm_kb / 1024.0, 1), "opened": n, "failed": failed, "non200": bad,
         "still_open": still, "open_s": round(open_s, 2),
         "kib_per_conn": round((idle_kb - base_kb) / n, 2) if n else None}
    log("%s  %-8s baseline=%sMiB idle=%sMiB (%s KiB/conn) opened=%d failed=%d non200=%d still_open=%d in %.1fs"
        % ("idletls" if tls else "idle10k", name, r["baseline_rss_mib"], r["idle_rss_mib"], r["kib_per_conn"], n, failed,
           bad, still, open_s))
    return r


# ----------------------------------------------------------------------------- phases

def assert_alive(procs):
    for name, (port, m) in procs.items():
        if not m.alive():
            raise RuntimeError("%s died (rc=%s), log %s" % (name, m.p.returncode, m.logpath))


def https_phase(args, ctx, results, outputs):
    """https1 then https2, targets interleaved per round, one unrecorded warm-up per target."""
    procs = start_checked(ctx["names"], ctx["tls"], ctx)
    runners = {"https1": run_https1, "https2": run_https2}
    try:
        for sc in [s for s in ("https1", "https2") if s in ctx["scenarios"]]:
            run = runners[sc]
            if args.warmup > 0:
                for name, (port, m) in procs.items():
                    run(args, ctx, port, m.pid, args.warmup, measure=False)
                    time.sleep(args.pause)
            for rnd in range(1, args.rounds + 1):
                for name, (port, m) in procs.items():
                    assert_alive(procs)
                    r, out = run(args, ctx, port, m.pid, args.duration)
                    r = finish_run(dict(r, scenario=sc, target=name, round=rnd))
                    results.append(r)
                    outputs.append({"scenario": sc, "target": name, "round": rnd, "output": out})
                    log("%-7s r%d %-8s rps=%-9s p50=%-7s p99=%-7s mean=%-7s us/req=%-6s rss=%sMiB errs=%s non2xx=%s "
                        "foreign=%s%%" % (sc, rnd, name, pb.fmt(r["rps"], 0), pb.fmt(r.get("p50"), 3),
                                          pb.fmt(r.get("p99"), 3), pb.fmt(r.get("lat_avg"), 3),
                                          r.get("proxy_cpu_us_per_req"), r.get("proxy_rss_peak_mib"),
                                          r["errors"], r["non2xx"], r.get("foreign_cpu_pct")))
                    if (r.get("foreign_cpu_pct") or 0) > args.foreign_warn:
                        log("WARNING: %.0f%% of a CPU was used by processes that are not ours: the machine is "
                            "not quiet, figures are suspect" % r["foreign_cpu_pct"])
                    time.sleep(args.pause)
        ctx["meta"]["tls_lifetime_vmhwm_mib"] = {n: round(pb.tree_hwm_kb(m.pid) / 1024.0, 1)
                                                 for n, (p, m) in procs.items() if m.alive()}
    finally:
        for name, (port, m) in procs.items():
            keep_log(ctx, m)
            m.stop()


def idle_phase(args, ctx, results, tls=False):
    """A fresh proxy per target and round (baseline RSS is then that of a proxy that has served
    nothing heavy), targets interleaved per round; plain HTTP, or TLS with `tls`."""
    failed = set()   # a target that does not start is not retried every round
    for rnd in range(1, args.rounds + 1):
        for name in ctx["names"]:
            if name in failed or pb.forwards(name):
                continue
            procs = start_checked([name], ctx["tls"] if tls else None, ctx)
            if name not in procs:
                failed.add(name)
                continue
            port, m = procs[name]
            try:
                r = measure_idle(args, name, port, m, tls)
                results.append(dict(r, scenario="idletls" if tls else "idle10k", target=name, round=rnd))
                assert_alive(procs)
            finally:
                keep_log(ctx, m)
                m.stop()
            time.sleep(args.pause)


def keep_log(ctx, m):
    try:
        shutil.copy(m.logpath, os.path.join(ctx["out"], "logs", m.name + ".log"))
    except OSError:
        pass


# ----------------------------------------------------------------------------- summary

def summarize(results, names):
    out = {}
    for sc in ("https1", "https2", "idle10k", "idletls"):
        rows = []
        for name in names:
            rs = [r for r in results if r["scenario"] == sc and r["target"] == name]
            if not rs:
                continue
            row = {"target": name, "n": len(rs)}
            if sc in ("idle10k", "idletls"):
                for k in ("baseline_rss_mib", "idle_rss_mib", "kib_per_conn", "open_s"):
                    row[k] = pb.med([r[k] for r in rs])
                row["hwm_mib_max"] = max(r["hwm_mib"] for r in rs)
                row["idle_rss_mib_max"] = max(r["idle_rss_mib"] for r in rs)
                row["opened_min"] = min(r["opened"] for r in rs)
                row["still_open_min"] = min(r["still_open"] for r in rs)
                row["failed"] = sum(r["failed"] for r in rs)
                row["non200"] = sum(r["non200"] for r in rs)
            else:
                rps = [r["rps"] for r in rs if r["rps"] is not None]
                for k in ("rps", "p50", "p90", "p99", "lat_avg", "lat_sd", "proxy_cpu_us_per_req", "proxy_cpu_pct",
                          "client_cpu_pct"):
                    row[k] = pb.med([r.get(k) for r in rs])
                row["rps_min"], row["rps_max"] = (min(rps), max(rps)) if rps else (None, None)
                row["rss_peak_mib"] = max(r.get("proxy_rss_peak_mib") or 0 for r in rs)
                row["hwm_mib"] = max(r.get("proxy_hwm_mib") or 0 for r in rs)
                row["foreign_cpu_pct_max"] = max(r.get("foreign_cpu_pct") or 0 for r in rs)
                row["errors"] = sum(r["errors"] or 0 for r in rs)
                row["hung"] = sum(1 for r in rs if r.get("hung"))
                row["non2xx"] = sum(r["non2xx"] or 0 for r in rs)
                row["protocol"] = rs[0].get("protocol") or ""
                row["cipher"] = rs[0].get("cipher") or ""
            rows.append(row)
        if rows:
            out[sc] = rows
    return out


def hung_note(rows):
    hung = ["%s: %d" % (r["target"], r["hung"]) for r in rows if r.get("hung")]
    return ["", "Runs lost because the load generator hung and was killed: " + ", ".join(hung)] if hung else []


def markdown(summary, meta, args):
    f = pb.fmt
    cpus = meta["cpus"]
    pinning = "backends on CPU %s, proxy on CPU %s, load generator on CPU %s" % (
        cpus["backend"], cpus["proxy"], cpus["client"]) if cpus["proxy"] is not None else "no pinning"
    L = ["# TLS / HTTP/2 / idle-connection benchmark", "",
         "Started %s. Layout `%s`: %s. Figures are medians of %d round(s) of %d s (after a %d s unrecorded "
         "warm-up per target), targets interleaved per round. Every proxy: one worker, the same ECDSA P-256 "
         "certificate, TLS 1.2+1.3, ALPN h2,http/1.1, keep-alive to 2 nginx upstreams (GET / = 3-byte body), "
         "round robin, no access log." % (meta["started"], meta["layout"], pinning, args.rounds, args.duration,
                                          args.warmup), ""]
    foreign = max([r["foreign_cpu_pct_max"] for sc in ("https1", "https2") for r in summary.get(sc, [])], default=0)
    if foreign > args.foreign_warn:
        L += ["**The machine was not quiet**: up to %.0f%% of a CPU was used by processes that are not ours "
              "during the https runs (column \"foreign CPU\"): req/s are lower and CPU µs/req higher than on a "
              "quiet machine; compare targets within this run only." % foreign, ""]
    L += ["**Handshakes are amortised** in https1 and https2: every connection is kept alive for the whole run "
          "(one TLS handshake, then thousands of requests), so these figures measure encrypted proxying, not "
          "handshake cost. CPU µs/req = CPU time (user+system) of the proxy's whole process tree during the run "
          "÷ requests completed.", ""]
    if "https1" in summary:
        L += ["## https1 - HTTPS HTTP/1.1, GET /, %d connections (wrk, --latency)" % args.connections, "",
              "| target | req/s | req/s min-max | p50 ms | p99 ms | CPU µs/req | proxy CPU % | peak RSS MiB | errors | non-2xx | foreign CPU % (max) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in summary["https1"]:
            L.append("| %s | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["target"], f(r["rps"], 0), f(r["rps_min"], 0), f(r["rps_max"], 0), f(r["p50"], 2), f(r["p99"], 2),
                f(r["proxy_cpu_us_per_req"], 1), f(r["proxy_cpu_pct"], 0), f(r["rss_peak_mib"], 1), r["errors"],
                r["non2xx"], f(r["foreign_cpu_pct_max"], 0)))
        L += hung_note(summary["https1"]) + [""]
    if "https2" in summary:
        src = ("p50/p99 (nearest rank) computed from h2load's per-request `--log-file`, which costs h2load "
               "about 1 µs per request on the proxy's CPU" if args.h2_percentiles
               else "p50/p99 not available (h2load prints none; run with --h2-percentiles)")
        L += ["## https2 - HTTP/2 over TLS, GET /, %d connections x %d streams (h2load)" % (args.connections,
                                                                                             args.streams), "",
              "Latency: h2load's \"time for request\" mean and sd; %s." % src, "",
              "| target | req/s | req/s min-max | mean ms | sd ms | p50 ms | p99 ms | CPU µs/req | proxy CPU % | peak RSS MiB | failed+errored | non-2xx | protocol, cipher | foreign CPU % (max) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for r in summary["https2"]:
            L.append("| %s | %s | %s-%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s, %s | %s |" % (
                r["target"], f(r["rps"], 0), f(r["rps_min"], 0), f(r["rps_max"], 0), f(r["lat_avg"], 2),
                f(r["lat_sd"], 2), f(r["p50"], 2), f(r["p99"], 2), f(r["proxy_cpu_us_per_req"], 1),
                f(r["proxy_cpu_pct"], 0), f(r["rss_peak_mib"], 1), r["errors"], r["non2xx"], r["protocol"],
                r["cipher"], f(r["foreign_cpu_pct_max"], 0)))
        L += hung_note(summary["https2"]) + [""]
    if "idletls" in summary:
        L += ["## idletls - %d idle keep-alive connections over TLS" % args.idle_connections, "",
              "As idle10k, on each target's TLS listener (HTTP/1.1 by ALPN, opened one after another).", "",
              "| target | baseline RSS MiB | RSS with idle MiB (max) | KiB/conn | opened (min) | still open at measurement (min) | failed | non-200 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for r in summary["idletls"]:
            L.append("| %s | %s | %s (%s) | %s | %s | %s | %s | %s |" % (
                r["target"], f(r["baseline_rss_mib"], 1), f(r["idle_rss_mib"], 1), f(r["idle_rss_mib_max"], 1),
                f(r["kib_per_conn"], 2), r["opened_min"], r["still_open_min"], r["failed"], r["non200"]))
        L.append("")
    if "idle10k" in summary:
        L += ["## idle10k - %d idle keep-alive connections on the plain HTTP listener" % args.idle_connections, "",
              "A fresh proxy per round. Baseline = VmRSS of the proxy's process tree after 20 requests; then every "
              "connection sends one `GET / HTTP/1.1` and reads the response, all stay open; RSS read %s s after the "
              "last one opened. KiB/conn = (idle - baseline) / connections. Kernel socket buffers are not in RSS."
              % f(args.idle_settle, 0), "",
              "| target | baseline RSS MiB | RSS with idle MiB (max) | KiB/conn | VmHWM MiB (max) | opened (min) | still open at measurement (min) | failed | non-200 | open time s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in summary["idle10k"]:
            L.append("| %s | %s | %s (%s) | %s | %s | %s | %s | %s | %s | %s |" % (
                r["target"], f(r["baseline_rss_mib"], 1), f(r["idle_rss_mib"], 1), f(r["idle_rss_mib_max"], 1),
                f(r["kib_per_conn"], 2), f(r["hwm_mib_max"], 1), r["opened_min"], r["still_open_min"], r["failed"],
                r["non200"], f(r["open_s"], 1)))
        L.append("")
        g = next((r for r in summary["idle10k"] if r["target"] == "gantry"), None)
        if g:
            ok = g["idle_rss_mib_max"] < GANTRY_GOAL_MIB and g["still_open_min"] == args.idle_connections
            L += ["Goal, gantry under %d MiB with %d idle connections: **%s** (max over rounds %s MiB, %d of %d "
                  "still open)." % (GANTRY_GOAL_MIB, args.idle_connections, "met" if ok else "NOT met",
                                    f(g["idle_rss_mib_max"], 1), g["still_open_min"], args.idle_connections), ""]
    L += ["Limits, the same for every target: %d connections (nginx worker_connections, HAProxy maxconn, gantry "
          "maxConnectionsPerClient), idle timeouts %s (Envoy: its 1 h default); `ulimit -n` %d for the proxies%s."
          % (MAX_CONNS, IDLE_TIMEOUT, meta["proxy_nofile"],
             "" if meta["proxy_nofile"] >= 2 * MAX_CONNS + 100 else
             " (the hard limit here; HAProxy wants 2 fds per maxconn, so it runs with `no strict-limits`)"), ""]
    L += ["## Versions", ""] + ["- %s: %s" % kv for kv in meta["versions"].items()] + [""]
    L += ["## Commands", "", "Load generators (taskset -c N is the CPU pinning):", "", "```"]
    L += ["%s: %s" % kv for kv in meta["loadgen_commands"].items()]
    L += ["```", "", "Proxies and backends as started:", "", "```"]
    L += ["%s: %s" % kv for kv in meta["commands"].items()]
    L += ["```", ""]
    if meta["checks"]:
        L += ["Checks before load (ALPN from a client offering h2,http/1.1; cipher as OpenSSL's default client "
              "order gets it, which is wrk's): ", "", "```"]
        L += ["%s: %s" % (n, json.dumps(c)) for n, c in meta["checks"].items()]
        L += ["```", ""]
    if meta["skipped"]:
        L += ["Skipped / dropped: " + json.dumps(meta["skipped"]), ""]
    return "\n".join(L)


def write_results(ctx, results, outputs, partial):
    meta, args = ctx["meta"], ctx["args"]
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %z")
    meta["partial"] = partial
    meta["skipped"] = ctx["skipped"]
    for r in results:
        if r["scenario"] not in ("idle10k", "idletls"):
            meta["loadgen_commands"].setdefault("%s (%s)" % (r["scenario"], r["target"]), r["cmd"])
    summary = summarize(results, ctx["names"])
    md = markdown(summary, meta, args)
    if partial:
        md = "**PARTIAL RESULTS (run interrupted)**\n\n" + md
    out = ctx["out"]
    with open(os.path.join(out, "raw.json"), "w") as f:
        json.dump({"meta": meta, "results": results, "summary": summary}, f, indent=1)
    with open(os.path.join(out, "loadgen_outputs.json"), "w") as f:
        json.dump(outputs, f, indent=1)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(md + "\n")
    conf_dir = os.path.join(out, "configs")
    os.makedirs(conf_dir, exist_ok=True)
    for label, path in meta["configs"].items():
        try:
            shutil.copy(path, os.path.join(conf_dir, label + "-" + os.path.basename(path)))
        except OSError:
            pass
    return md


# ----------------------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma list of %s" % ",".join(TARGETS))
    ap.add_argument("--scenarios", default="https1,https2,idle10k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded warm-up per target and scenario")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--streams", type=int, default=10, help="h2load -m: concurrent streams per connection")
    ap.add_argument("--threads", type=int, default=1, help="wrk/h2load threads")
    ap.add_argument("--client-timeout", type=int, default=5, help="wrk --timeout / h2load -T, seconds")
    ap.add_argument("--no-h2-percentiles", dest="h2_percentiles", action="store_false",
                    help="do not write h2load's per-request log (then https2 has mean/sd latency only)")
    ap.add_argument("--idle-connections", type=int, default=10000)
    ap.add_argument("--idle-inflight", type=int, default=100, help="connections being opened at once")
    ap.add_argument("--idle-settle", type=float, default=3.0, help="seconds idle before RSS is read")
    ap.add_argument("--idle-timeout", type=float, default=120.0, help="give up opening after this many seconds")
    ap.add_argument("--layout", default="shared", choices=["shared", "split", "none"])
    ap.add_argument("--ready-timeout", type=float, default=30.0)
    ap.add_argument("--foreign-warn", type=float, default=10.0)
    ap.add_argument("--envoy-bin")
    ap.add_argument("--gantry-cmd", default=shlex.quote(os.path.join(BENCH_DIR, "gantry-proxy.sh"))
                    + " {port} {upstreams} {workdir}",
                    help="how gantry is started; needs GANTRY_BIN (default: gantry-proxy.sh)")
    ap.add_argument("--out", help="result dir (default benchmarks/results/tls-<timestamp>)")
    ap.add_argument("--keep-workdir", action="store_true")
    return ap.parse_args()


def raise_nofile(need):
    """10k client sockets in this process; children (backends) inherit the limit too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:   # raising the hard limit works as root
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def find_binaries(args, names, skipped):
    bins = {"nginx": shutil.which("nginx") or "/usr/sbin/nginx",
            "haproxy": shutil.which("haproxy") or "/usr/sbin/haproxy",
            "envoy": pb.find_envoy(args.envoy_bin), "gantry": os.environ.get("GANTRY_BIN")}
    for tool, pkg in (("wrk", "wrk"), ("h2load", "nghttp2-client"), ("openssl", "openssl")):
        if not shutil.which(tool):
            raise SystemExit("%s not found (apt-get install %s)" % (tool, pkg))
    if not os.path.exists(bins["nginx"]):
        raise SystemExit("nginx not found (apt-get install nginx): needed for the backends")
    usable = []
    for name in names:
        b = bins.get(name.removesuffix("_fwd"))
        if not b or not os.path.exists(b):
            skipped[name] = "GANTRY_BIN not set" if (name == "gantry" and not b) else "binary not found: %s" % b
            log("skipping %s: %s" % (name, skipped[name]))
        else:
            usable.append(name)
    return bins, usable


def versions(bins, names):
    v = {}
    for name, argv in (("nginx", ["-v"]), ("haproxy", ["-v"]), ("envoy", ["--version"]), ("gantry", ["--version"])):
        if name in names:
            v[name] = pb.version_of([bins[name]] + argv)
    if "gantry" in names:
        v["gantry binary"] = "%s (modified %s)" % (bins["gantry"], time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(bins["gantry"]))))
    v["wrk"] = pb.version_of(["wrk", "-v"])
    v["h2load"] = pb.version_of(["h2load", "--version"])
    v["openssl"] = pb.version_of(["openssl", "version"])
    v["kernel"] = os.uname().release
    with open("/proc/cpuinfo") as f:
        v["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    v["cpus"] = str(os.cpu_count())
    v["python"] = sys.version.split()[0]
    return v


def start_backends(ctx):
    """Two nginx upstreams on CPU 0, exactly as proxybench starts them (GET / = "ok\\n")."""
    for i, port in enumerate(pb.BACKEND_PORTS):
        d = os.path.join(ctx["work"], "backend%d" % i)
        conf = pb.backend_conf(d, port, "b%d" % i)
        m = pb.REG.start("backend%d" % i, [ctx["bins"]["nginx"], "-p", d + "/", "-c", conf, "-e",
                                           os.path.join(d, "error.log")], cpus=ctx["cpus"]["backend"],
                         logdir=ctx["logdir"])
        ctx["meta"]["commands"]["backend%d" % i] = quote(m.argv)
        pb.wait_ready(port, m, ctx["args"].ready_timeout)
    st, _, body = pb.http_get(pb.BACKEND_PORTS[0], "/")
    assert st == 200 and body == b"ok\n", (st, body)


def main():
    args = parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, pb._sig_handler)
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in names:
        if t not in TARGETS:
            raise SystemExit("unknown target %s (known: %s)" % (t, ",".join(TARGETS)))
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    skipped = {}
    bins, names = find_binaries(args, names, skipped)
    nofile = raise_nofile(max(65536, args.idle_connections + 4096))
    if "idle10k" in scenarios and nofile < args.idle_connections + 1024:
        raise SystemExit("ulimit -n %d is too low for %d connections" % (nofile, args.idle_connections))

    out = args.out or os.path.join(BENCH_DIR, "results", "tls-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="tlsbench-")
    os.chmod(work, 0o755)   # nginx workers run as 'nobody' when started as root
    cpus = pb.layout_cpus(args.layout)
    cpus = {"backend": cpus["backend"], "proxy": cpus["proxy"], "client": cpus["wrk"]}
    meta = {"started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv, "layout": args.layout,
            "cpus": cpus, "rounds": args.rounds, "duration": args.duration, "warmup": args.warmup,
            "connections": args.connections, "streams": args.streams, "idle_connections": args.idle_connections,
            "versions": versions(bins, names), "commands": {}, "configs": {}, "checks": {},
            "loadgen_commands": {}, "gantry_limits": GANTRY_LIMITS, "proxy_nofile": proxy_nofile(), "idle_timeout": IDLE_TIMEOUT}
    log("versions:", json.dumps(meta["versions"]))
    log("workdir:", work, " results:", out)
    ctx = {"args": args, "bins": bins, "names": names, "scenarios": scenarios, "skipped": skipped, "work": work,
           "logdir": os.path.join(work, "logs"), "out": out, "cpus": cpus, "meta": meta,
           "ups": ["%s:%d" % (HOST, p) for p in pb.BACKEND_PORTS], "nginx_ver": nginx_version(bins["nginx"]),
           "gantry_cmd": args.gantry_cmd}
    os.makedirs(ctx["logdir"])
    results, outputs, done = [], [], False
    try:
        ports = pb.BACKEND_PORTS + [TLS_PORTS[n] for n in names] + [PLAIN_PORTS[n] for n in names]
        busy = [p for p in ports if not pb.port_free(p)]
        if busy:   # we never kill anything we did not start
            raise SystemExit("ports already in use: %s (stop whatever uses them first)" % busy)
        ctx["tls"] = make_certificate(work)
        shutil.copy(ctx["tls"]["cert"], os.path.join(out, "cert.pem"))
        start_backends(ctx)
        if {"https1", "https2"} & set(scenarios):
            # a target whose TLS listener fails (e.g. a gantry build without TLS) still gets idle10k
            https_phase(args, ctx, results, outputs)
        if "idle10k" in scenarios:
            idle_phase(args, ctx, results)
        if "idletls" in scenarios:
            idle_phase(args, ctx, results, tls=True)
        md = write_results(ctx, results, outputs, partial=False)
        done = True
        print(md)
        print("\nresults written to", out)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):   # let the cleanup finish
            signal.signal(sig, signal.SIG_IGN)
        if not done and results:
            try:
                write_results(ctx, results, outputs, partial=True)
                log("partial results written to", out)
            except Exception as e:
                log("could not write partial results:", e)
        for p in list(LOADGEN):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        pb.REG.stop_all()
        if not args.keep_workdir:
            shutil.rmtree(work, ignore_errors=True)
        log("all started processes stopped")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
