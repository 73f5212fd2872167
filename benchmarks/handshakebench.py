#!/usr/bin/env python3
"""TLS handshakes: a new connection per request, as the seeds' load balancer sees every new client.

Each target terminates TLS on one worker (CPU 1) with the same ECDSA P-256 certificate and
answers `GET /` itself with a 3-byte body (gantry: a route with a `respond` policy; nginx:
`return 200`; HAProxy: `http-request return`), so that a connection costs its handshake, one
small request and the close. The client is `openssl s_time` (OpenSSL 3, CPU 0): for TLS 1.3 and
TLS 1.2, once with a full handshake per connection (`-new`) and once resuming the first
connection's session (`-reuse`: tickets in TLS 1.3, the server's session cache or tickets in
1.2). Reported: connections per second and the target's CPU per connection (its utime + stime
ticks / connections), the median of the rounds, which interleave the targets.

`--key rsa2048` uses an RSA-2048 certificate instead, the other kind most sites serve. Its
signature is the server's dearest step, and it is where TLS libraries differ most: on a CPU with
AVX-512 IFMA, OpenSSL 3 (nginx, HAProxy) signs with code that BoringSSL (swift-nio-ssl) does not
have.

    GANTRY_BIN=.build/release/gantry python3 benchmarks/handshakebench.py [--rounds 3] [--duration 8] [--key rsa2048]
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxybench as pb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = [("tls1_3", "new"), ("tls1_3", "reuse"), ("tls1_2", "new"), ("tls1_2", "reuse")]


def certificate(work, kind):
    key, cert = os.path.join(work, kind + ".key"), os.path.join(work, kind + ".pem")
    algorithm = {"p256": ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "rsa2048": ["rsa:2048"]}[kind]
    subprocess.run(["openssl", "req", "-x509", "-newkey"] + algorithm + ["-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def nginx(work, port, cert, key):
    d = os.path.join(work, "nginx")
    os.makedirs(d, exist_ok=True)
    body = """  server {{
    listen 127.0.0.1:{port} ssl backlog=4096;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    location / {{ return 200 "ok\\n"; }}
  }}""".format(port=port, cert=cert, key=key)
    conf = pb.write(os.path.join(d, "nginx.conf"), pb.NGINX_COMMON.format(d=d, body=body))
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", d + "/", "-c", conf, "-e", os.path.join(d, "error.log")], {}


def haproxy(work, port, cert, key):
    d = os.path.join(work, "haproxy")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "bundle.pem"), "w") as f:
        f.write(open(cert).read() + open(key).read())
    conf = pb.write(os.path.join(d, "haproxy.cfg"), """global
  nbthread 1
  maxconn 4096
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend tls
  bind 127.0.0.1:{port} ssl crt {bundle} ssl-min-ver TLSv1.2
  http-request return status 200 content-type text/plain string "ok\\n"
""".format(port=port, bundle=os.path.join(d, "bundle.pem")))
    return [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", conf], {}


def gantry(work, port, cert, key):
    d = os.path.join(work, "gantry")
    os.makedirs(d, exist_ok=True)
    config = pb.write(os.path.join(d, "gantry.yaml"), """runtime: {{workers: 1}}
accessLog: {{enabled: false}}
admin: {{enabled: false}}
loadBalancer:
  listeners: [{{name: tls, port: {port}, tls: {{certificates: [{{certificate: {cert}, key: {key}}}]}}}}]
  limits: {{maxConnectionsPerClient: 1000000, newConnectionsPerSecondPerClient: 1000000}}
gateway:
  policies: [{{name: ok, respond: {{body: "ok\\n"}}}}]
  routes: [{{path: /, service: none, policies: [ok]}}]
services: [{{name: none, endpoints: [127.0.0.1:9]}}]
""".format(port=port, cert=cert, key=key))
    binary = os.path.abspath(os.environ.get("GANTRY_BIN", ".build/release/gantry"))
    return [binary, "up", config, "--log-level", "warning", "--no-watch"], {}


TARGETS = {"gantry": gantry, "nginx": nginx, "haproxy": haproxy}


def ticks(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def s_time(port, version, mode, seconds):
    argv = ["taskset", "-c", "0", "openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-" + version, "-" + mode,
            "-time", str(seconds), "-www", "/"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    match = re.search(r"(\d+) connections in ([\d.]+) real seconds", out)
    if not match:
        raise SystemExit("openssl s_time gave no figure:\n" + out)
    return int(match.group(1)), float(match.group(2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--targets", default="gantry,nginx,haproxy")
    parser.add_argument("--key", choices=("p256", "rsa2048"), default="p256", help="the certificate's key")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="handshakebench-")
    cert, key = certificate(work, args.key)
    processes = {}
    try:
        for index, name in enumerate(args.targets.split(",")):
            port = 18300 + index
            argv, env = TARGETS[name](work, port, cert, key)
            process = subprocess.Popen(["taskset", "-c", "1"] + argv, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(work, name + ".err"), "w"), env=dict(os.environ, **env))
            processes[name] = (port, process)
            deadline = time.monotonic() + 20
            while True:
                check = subprocess.run(["curl", "-sk", "--max-time", "2", "https://127.0.0.1:%d/" % port], capture_output=True, text=True)
                if check.stdout == "ok\n":
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("%s did not answer; see %s" % (name, os.path.join(work, name + ".err")))
                time.sleep(0.2)
        results = {name: {"%s-%s" % mode: [] for mode in MODES} for name in processes}
        rss_before = {name: pb.tree_rss_kb(process.pid) / 1024 for name, (port, process) in processes.items()}
        for round_number in range(args.rounds):
            for version, mode in MODES:
                for name, (port, process) in processes.items():
                    pids = pb.proc_tree(process.pid)
                    before = ticks(pids)
                    connections, seconds = s_time(port, version, mode, args.duration)
                    cpu = (ticks(pids) - before) / pb.CLK_TCK
                    figure = {"per_second": connections / seconds, "cpu_us": 1e6 * cpu / max(connections, 1)}
                    results[name]["%s-%s" % (version, mode)].append(figure)
                    pb.log("r%d %s %-5s %-8s %7.0f conn/s  %6.1f µs CPU/conn" % (
                        round_number + 1, version, mode, name, figure["per_second"], figure["cpu_us"]))
        lines = ["| handshakes | " + " | ".join("%s conn/s | %s µs/conn" % (n, n) for n in processes) + " | gantry ÷ nginx |",
                 "|---|" + "---:|---:|" * len(processes) + "---:|"]
        summary = {}
        for version, mode in MODES:
            key = "%s-%s" % (version, mode)
            row = {name: {k: statistics.median(r[k] for r in results[name][key]) for k in ("per_second", "cpu_us")} for name in processes}
            summary[key] = row
            ratio = row["gantry"]["cpu_us"] / row["nginx"]["cpu_us"] if "gantry" in row and "nginx" in row else float("nan")
            lines.append("| TLS %s, %s | " % (version[3:].replace("_", "."), "full handshake" if mode == "new" else "resumed")
                         + " | ".join("%.0f | %.1f" % (row[n]["per_second"], row[n]["cpu_us"]) for n in processes) + " | %.2f |" % ratio)
        # What each target holds after every round's connections have closed: memory kept for
        # connections already gone shows here (swift-nio-ssl's close once kept each one for 5 s).
        rss_after = {name: pb.tree_rss_kb(process.pid) / 1024 for name, (port, process) in processes.items()}
        lines.append("")
        lines.append("| RSS, MiB | " + " | ".join(processes) + " |")
        lines.append("|---|" + "---:|" * len(processes))
        lines.append("| before the rounds | " + " | ".join("%.1f" % rss_before[n] for n in processes) + " |")
        lines.append("| after them | " + " | ".join("%.1f" % rss_after[n] for n in processes) + " |")
        print("\n".join(lines))
        os.makedirs(args.out, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = "handshakes-%s%s.json" % ("" if args.key == "p256" else args.key + "-", stamp)
        with open(os.path.join(args.out, name), "w") as f:
            json.dump({"results": results, "summary": summary, "duration": args.duration, "key": args.key,
                       "rss_mib": {"before": rss_before, "after": rss_after}}, f, indent=1)
    finally:
        for _, process in processes.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
