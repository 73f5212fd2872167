#!/usr/bin/env python3
"""reloadbench.py - what changing a running proxy's configuration costs (Python 3 stdlib only).

Two measurements, each in one run:

* load: gantry's CPU per request and p99 under wrk (keep-alive, --connections), with its
  configuration changed once a second through the admin API (a route and a policy renamed, so
  every change makes a new snapshot on every event loop) and without, interleaved round by
  round (none, reload, none, reload, ...). Layout as proxybench.py's `shared`: the nginx backend
  on CPU 0; gantry and wrk on CPU 1. CPU is the whole process tree's utime+stime.

* apply: configurations of 10, 1,000 and 10,000 routes (each `host: h<i>.example.com, path:
  /p<i>` to one backend), for gantry, nginx and HAProxy side by side:
    validate  the checker alone on the file: `gantry validate`, `nginx -t`, `haproxy -c`
              (a whole process each, as an operator runs it);
    reload    a changed file (one route renamed) handed to the running proxy until the changed
              route answers from the new configuration: gantry's `POST /api/config` (checked,
              compared, applied on every loop before it answers), nginx's `-s reload` (new
              workers), HAProxy's master CLI `reload` (a new worker process, -W mode).
  Each measured --repeat times, the median reported.

Writes summary.md and raw.json into --out. Kills what it started on exit.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import http.client

BACKEND_PORT = 18190
PROXY_PORT = 18191
ADMIN_PORT = 18192
NGINX_PORT = 18193
HAPROXY_PORT = 18194


def log(*a):
    print("[reloadbench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


class Process:
    def __init__(self, argv, logpath, cpus=None, cwd=None):
        if cpus is not None and shutil.which("taskset"):
            argv = ["taskset", "-c", cpus] + argv
        self.log = open(logpath, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        self.pid = self.p.pid

    def stop(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.p.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                pass


STARTED = []


def start(*a, **kw):
    process = Process(*a, **kw)
    STARTED.append(process)
    return process


def stop_all():
    for process in reversed(STARTED):
        process.stop()


def wait_until(condition, timeout=30.0, step=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def admin_up():
    try:
        connection = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=2)
        connection.request("GET", "/api/config")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def status(port, path="/", host="example.com"):
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", path, headers={"Host": host})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        return answer.status
    except OSError:
        return 0


def tree_cpu_seconds(pid):
    """utime+stime of `pid` and its descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open("/proc/%s/stat" % entry).read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                pass
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = open("/proc/%d/stat" % current).read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
        stack += children.get(current, [])
    return total / ticks


def backend_config(work):
    path = os.path.join(work, "backend.conf")
    open(path, "w").write("""worker_processes 1; daemon off; pid %s/backend.pid; error_log %s/backend.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000;
  server { listen 127.0.0.1:%d backlog=4096; location / { return 200 "ok\\n"; } } }
""" % (work, work, BACKEND_PORT))
    return path


# ----------------------------------------------------------------------------- gantry configs

def gantry_config(routes, version=0, work=""):
    lines = ["runtime: {workers: 1}", "accessLog: {enabled: false}", "admin: {port: %d}" % ADMIN_PORT,
             "loadBalancer: {listeners: [{name: bench, port: %d}]}" % PROXY_PORT, "gateway:", "  policies:",
             "    - {name: stamp-%d, transform: {responseHeaders: {add: [{name: X-Version, value: \"%d\"}]}}}" % (version, version),
             "  routes:"]
    for i in range(routes):
        path = "/changed-%d" % version if i == 1 else "/p%d" % i
        lines.append("    - {name: route-%d-%d, host: h%d.example.com, path: %s, service: backend}" % (i, version if i == 1 else 0, i, path))
    lines.append("    - {name: all-%d, host: example.com, path: /, service: backend, policies: [stamp-%d]}" % (version, version))
    lines += ["services:", "  - name: backend", "    connectionPool: {maxIdlePerEndpoint: 1024, idleTimeout: 300s}",
              "    endpoints: [127.0.0.1:%d]" % BACKEND_PORT]
    return "\n".join(lines) + "\n"


def apply(text, path):
    connection = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=120)
    connection.request("POST", "/api/config", body=json.dumps({"path": path, "text": text, "dryRun": False}))
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer


# ----------------------------------------------------------------------------- load with reloads

def wrk(seconds, connections):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency",
                          "-H", "Host: example.com", "http://127.0.0.1:%d/" % PROXY_PORT],
                         capture_output=True, text=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99_ms = float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, p99_ms, (errors.group(1) if errors else ""), int(non2xx.group(1)) if non2xx else 0


def measure_load(args, work, gantry_bin):
    config = os.path.join(work, "gantry.yaml")
    open(config, "w").write(gantry_config(10, 0))
    gantry = start([gantry_bin, "up", config, "--no-watch", "--log-level", "warning"], os.path.join(work, "gantry-load.log"), cpus="1")
    assert wait_until(lambda: status(PROXY_PORT) == 200 and admin_up()), "gantry did not start"
    runs = []
    version = 0
    for round_number in range(args.rounds):
        for mode in ("none", "reload"):
            stop = threading.Event()
            applied = [0]

            def reloader():
                nonlocal version
                while not stop.wait(1.0):
                    version += 1
                    if apply(gantry_config(10, version), config).get("result") == "applied":
                        applied[0] += 1

            subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c%d" % args.connections, "-d2s", "http://127.0.0.1:%d/" % PROXY_PORT],
                           capture_output=True)
            thread = threading.Thread(target=reloader) if mode == "reload" else None
            before = tree_cpu_seconds(gantry.pid)
            if thread:
                thread.start()
            requests, p99, errors, non2xx = wrk(args.duration, args.connections)
            stop.set()
            if thread:
                thread.join()
            cpu = tree_cpu_seconds(gantry.pid) - before
            run = {"round": round_number + 1, "mode": mode, "requests": requests, "us_per_request": cpu * 1e6 / requests,
                   "p99_ms": p99, "reloads": applied[0], "socket_errors": errors, "non2xx": non2xx}
            log("load r%d %-6s rps=%d us/req=%.2f p99=%.3fms reloads=%d errors=%s non2xx=%d" % (
                round_number + 1, mode, requests / args.duration, run["us_per_request"], p99, applied[0], errors or "0", non2xx))
            runs.append(run)
            time.sleep(1)
    gantry.stop()
    return runs


# ----------------------------------------------------------------------------- apply times

def nginx_config(work, routes, version):
    servers = []
    for i in range(routes):
        path = "/changed-%d" % version if i == 1 else "/p%d" % i
        servers.append("  server { listen 127.0.0.1:%d; server_name h%d.example.com; location = %s { proxy_pass http://backend; } }"
                       % (NGINX_PORT, i, path))
    return """worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;
events { worker_connections 1024; }
http { access_log off; server_names_hash_max_size 65536; server_names_hash_bucket_size 128;
  upstream backend { server 127.0.0.1:%d; keepalive 64; }
%s
  server { listen 127.0.0.1:%d default_server; location / { proxy_pass http://backend; } } }
""" % (work, work, BACKEND_PORT, "\n".join(servers), NGINX_PORT)


def haproxy_config(work, routes, version):
    rules = []
    for i in range(routes):
        path = "/changed-%d" % version if i == 1 else "/p%d" % i
        rules.append("  use_backend backend if { hdr(host) -i h%d.example.com } { path %s }" % (i, path))
    return """global
  master-worker
  stats socket %s/haproxy.sock mode 600 level admin
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:%d
%s
  default_backend nothing
backend backend
  server b1 127.0.0.1:%d
backend nothing
""" % (work, HAPROXY_PORT, "\n".join(rules), BACKEND_PORT)


def timed(command):
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True)
    return time.monotonic() - started, result.returncode


def measure_apply(args, work, gantry_bin):
    results = []
    for routes in args.routes:
        log("apply: %d routes" % routes)
        row = {"routes": routes}
        # gantry
        path = os.path.join(work, "gantry-%d.yaml" % routes)
        open(path, "w").write(gantry_config(routes, 0))
        row["gantry_validate"] = statistics.median(timed([gantry_bin, "validate", path])[0] for _ in range(args.repeat))
        gantry = start([gantry_bin, "up", path, "--no-watch", "--log-level", "warning"], os.path.join(work, "gantry-%d.log" % routes), cpus="1")
        assert wait_until(lambda: status(PROXY_PORT) == 200 and admin_up(), timeout=120), "gantry did not start"
        times = []
        for version in range(1, args.repeat + 1):
            text = gantry_config(routes, version)
            started = time.monotonic()
            answer = apply(text, path)
            assert answer.get("result") == "applied", answer
            assert wait_until(lambda: status(PROXY_PORT, "/changed-%d" % version, "h1.example.com") == 200)
            times.append(time.monotonic() - started)
        row["gantry_reload"] = statistics.median(times)
        gantry.stop()
        # nginx
        conf = os.path.join(work, "nginx-%d.conf" % routes)
        open(conf, "w").write(nginx_config(work, routes, 0))
        row["nginx_validate"] = statistics.median(timed(["nginx", "-t", "-q", "-c", conf])[0] for _ in range(args.repeat))
        nginx = start(["nginx", "-c", conf], os.path.join(work, "nginx-%d.log" % routes), cpus="1")
        assert wait_until(lambda: status(NGINX_PORT, "/p0", "h0.example.com") == 200, timeout=60), "nginx did not start"
        times = []
        for version in range(1, args.repeat + 1):
            open(conf, "w").write(nginx_config(work, routes, version))
            started = time.monotonic()
            subprocess.run(["nginx", "-c", conf, "-s", "reload"], capture_output=True)
            assert wait_until(lambda: status(NGINX_PORT, "/changed-%d" % version, "h1.example.com") == 200), "nginx did not reload"
            times.append(time.monotonic() - started)
        row["nginx_reload"] = statistics.median(times)
        nginx.stop()
        # HAProxy
        cfg = os.path.join(work, "haproxy-%d.cfg" % routes)
        open(cfg, "w").write(haproxy_config(work, routes, 0))
        row["haproxy_validate"] = statistics.median(timed(["haproxy", "-c", "-q", "-f", cfg])[0] for _ in range(args.repeat))
        master = os.path.join(work, "haproxy-master.sock")
        haproxy = start(["haproxy", "-W", "-S", master, "-f", cfg], os.path.join(work, "haproxy-%d.log" % routes), cpus="1")
        assert wait_until(lambda: status(HAPROXY_PORT, "/p0", "h0.example.com") == 200, timeout=60), "haproxy did not start"

        def master_command(command):
            with socket.socket(socket.AF_UNIX) as control:
                control.connect(master)
                control.sendall(command + b"\n")
                return control.recv(4096)

        def master_ready():
            try:
                return b"worker" in master_command(b"show proc")
            except OSError:
                return False

        assert wait_until(master_ready, timeout=30), "haproxy's master CLI did not answer"
        times = []
        for version in range(1, args.repeat + 1):
            # The master executes itself again on a reload: its CLI is back once it answers.
            assert wait_until(master_ready, timeout=30), "haproxy's master CLI did not answer"
            open(cfg, "w").write(haproxy_config(work, routes, version))
            started = time.monotonic()
            master_command(b"reload")
            assert wait_until(lambda: status(HAPROXY_PORT, "/changed-%d" % version, "h1.example.com") == 200, timeout=60), "haproxy did not reload"
            times.append(time.monotonic() - started)
        row["haproxy_reload"] = statistics.median(times)
        haproxy.stop()
        log("  " + ", ".join("%s %.3fs" % (k, v) for k, v in row.items() if k != "routes"))
        results.append(row)
    return results


def summary(load, applies, args):
    lines = ["# Reloads: gantry beside nginx and HAProxy", "",
             "## CPU per request and p99 with a configuration change every second (gantry)", "",
             "wrk -t1 -c%d, %ds per run, %d rounds interleaved; a route and a policy renamed by `POST /api/config` each second." % (
                 args.connections, args.duration, args.rounds), "",
             "| mode | CPU µs/req (median) | per round | p99 ms (median) | changes applied | errors |", "|---|---:|---|---:|---:|---:|"]
    medians = {}
    for mode in ("none", "reload"):
        runs = [r for r in load if r["mode"] == mode]
        medians[mode] = (statistics.median(r["us_per_request"] for r in runs), statistics.median(r["p99_ms"] for r in runs))
        lines.append("| %s | %.2f | %s | %.3f | %d | %d |" % (
            mode, medians[mode][0], " ".join("%.2f" % r["us_per_request"] for r in runs), medians[mode][1],
            sum(r["reloads"] for r in runs), sum(r["non2xx"] for r in runs) + sum(1 for r in runs if r["socket_errors"])))
    lines += ["", "reload ÷ none: CPU %.3f, p99 %.3f" % (medians["reload"][0] / medians["none"][0], medians["reload"][1] / medians["none"][1]), "",
              "## Validating and applying a configuration of N routes (median of %d, seconds)" % args.repeat, "",
              "| routes | gantry validate | nginx -t | haproxy -c | gantry apply (live) | nginx -s reload | HAProxy reload |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in applies:
        lines.append("| %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |" % (
            row["routes"], row["gantry_validate"], row["nginx_validate"], row["haproxy_validate"], row["gantry_reload"], row["nginx_reload"],
            row["haproxy_reload"]))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gantry", default=os.environ.get("GANTRY_BIN", ".build/release/gantry"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--routes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.routes = [int(n) for n in args.routes.split(",")]
    gantry_bin = os.path.abspath(args.gantry)
    out = args.out or os.path.join("benchmarks", "results", "reload-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="reloadbench-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        start(["nginx", "-c", backend_config(work)], os.path.join(work, "backend.log"), cpus="0")
        assert wait_until(lambda: status(BACKEND_PORT) == 200), "the backend did not start"
        load = [] if args.skip_load else measure_load(args, work, gantry_bin)
        applies = measure_apply(args, work, gantry_bin)
        json.dump({"load": load, "apply": applies}, open(os.path.join(out, "raw.json"), "w"), indent=1)
        text = summary(load, applies, args) if load else "\n".join(str(row) for row in applies) + "\n"
        open(os.path.join(out, "summary.md"), "w").write(text)
        print(text)
    finally:
        stop_all()
        if os.environ.get("RELOADBENCH_KEEP"):
            log("work directory kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
