#!/usr/bin/env python3
"""The whole path: the built-in example's own request, beside Envoy doing the same.

`GET example.com/app/dashboard` with the ES256 token the example's auth-service issued, through
gantry's gateway (the `user-token` jwt policy against the auth-service's JWKS, the `per-user`
rate limit keyed on the token's subject, X-User-ID forwarded) to one of the app-service's two
pods, which reads the user's dashboard from SQLite; and the same request through Envoy
(jwt_authn with the same JWKS and claim_to_headers, local_ratelimit) in front of the same two
pods. Both proxies run one worker on CPU 1; the pods and wrk run on CPU 0. Rounds interleave
gantry and Envoy; each is the median of its rounds.

The rate limits are raised far above the offered load in both (gantry's per-user bucket to a
million a second, Envoy's one bucket the same), so every request is counted and none refused:
the benchmark measures the path, not the limit. Envoy runs twice: as jwt_authn comes, verifying
the token's signature on every request (`envoy`), and with its cache of verified tokens
(`envoy_cache`, jwt_cache_config), which gantry's jwt policy always has.

    GANTRY_BIN=.build/release/gantry python3 benchmarks/pathbench.py [--rounds 3] [--duration 10]

Reported per target: requests per second, p50/p99 latency, the proxy's own CPU per request and
requests per second per core of proxy CPU (1e6 / CPU µs per request), and the pods' CPU per
request (the same pods serve both).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_stack import ExampleStack, free_port, wait_for  # noqa: E402
import proxybench as pb  # noqa: E402


def bench_config(stack):
    """The example with one worker, no access log, fixed replicas and a limit the load never reaches."""
    text = stack.config()
    replacements = [
        ("runtime:\n  shutdownGracePeriod: 15s", "runtime:\n  workers: 1\n  shutdownGracePeriod: 15s"),
        ("rateLimit: {requests: 100, per: 1s, burst: 200, key: {claim: sub}}",
         "rateLimit: {requests: 1000000, per: 1s, burst: 1000000, key: {claim: sub}}"),
        ("maxReplicas: 6", "maxReplicas: 2"),
    ]
    for old, new in replacements:
        if old not in text:
            raise SystemExit("the example changed: %r is not in it" % old)
        text = text.replace(old, new)
    return text + "accessLog: {enabled: false}\n"


def envoy_config(port, pods, jwks, cache):
    cluster_endpoints = [{"endpoint": {"address": {"socket_address": {"address": h, "port_value": p}}}} for h, p in pods]
    return {
        "static_resources": {
            "listeners": [{
                "name": "web",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "web",
                        "codec_type": "HTTP1",
                        "route_config": {"virtual_hosts": [{
                            "name": "example", "domains": ["example.com"],
                            "routes": [{"match": {"prefix": "/app"}, "route": {"cluster": "app-service"}}]}]},
                        "http_filters": [
                            {"name": "envoy.filters.http.jwt_authn",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                                 "providers": {"user-token": {
                                     "issuer": "https://example.com/auth",
                                     "audiences": ["example.com"],
                                     "local_jwks": {"inline_string": jwks},
                                     "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                                     "claim_to_headers": [{"header_name": "X-User-ID", "claim_name": "sub"}],
                                 } | ({"jwt_cache_config": {"jwt_cache_size": 100}} if cache else {})},
                                 "rules": [{"match": {"prefix": "/app"}, "requires": {"provider_name": "user-token"}}],
                             }},
                            {"name": "envoy.filters.http.local_ratelimit",
                             "typed_config": {
                                 "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                                 "stat_prefix": "per_user",
                                 "token_bucket": {"max_tokens": 1000000, "tokens_per_fill": 1000000, "fill_interval": "1s"},
                                 "filter_enabled": {"runtime_key": "rl_enabled", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                                 "filter_enforced": {"runtime_key": "rl_enforced", "default_value": {"numerator": 100, "denominator": "HUNDRED"}},
                             }},
                            {"name": "envoy.filters.http.router",
                             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    }}]}],
            }],
            "clusters": [{
                "name": "app-service", "type": "STATIC", "connect_timeout": "2s", "lb_policy": "LEAST_REQUEST",
                "circuit_breakers": {"thresholds": [{"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}]},
                "load_assignment": {"cluster_name": "app-service", "endpoints": [{"lb_endpoints": cluster_endpoints}]},
            }],
        },
    }


def pin(pid, cpus):
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL)


def ticks(pid):
    """User + system clock ticks of one process (all its threads), not its children."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def get(port, path, token=None):
    request = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers={"Host": "example.com"})
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def measure(name, port, proxy_pid, pod_pids, token, args):
    argv = ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.duration, "--latency",
            "-H", "Host: example.com", "-H", "Authorization: Bearer " + token, "http://127.0.0.1:%d/app/dashboard" % port]
    warm = argv[:]
    warm[warm.index("-d%ds" % args.duration)] = "-d2s"
    subprocess.run(warm, capture_output=True)
    proxy0, pods0 = ticks(proxy_pid), sum(ticks(p) for p in pod_pids)
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    proxy1, pods1 = ticks(proxy_pid), sum(ticks(p) for p in pod_pids)
    result = pb.parse_wrk(out)
    requests = result["requests"] or 0
    if requests == 0 or result["non2xx"] or result["err_connect"] or result["err_read"] or result["err_timeout"]:
        raise SystemExit("%s: failed requests in the round:\n%s" % (name, out))
    result["proxy_cpu_us"] = 1e6 * (proxy1 - proxy0) / pb.CLK_TCK / requests
    result["pods_cpu_us"] = 1e6 * (pods1 - pods0) / pb.CLK_TCK / requests
    result["rps_per_core"] = 1e6 / result["proxy_cpu_us"]
    pb.log("%-11s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  proxy %.1f µs/req (%.0f req/s per core)  pods %.1f µs/req" % (
        name, result["rps"], result["p50"], result["p99"], result["proxy_cpu_us"], result["rps_per_core"], result["pods_cpu_us"]))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--envoy", default=None, help="Envoy binary (default: found as proxybench finds it)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = parser.parse_args()
    binary = os.path.abspath(os.environ.get("GANTRY_BIN", ".build/release/gantry"))
    envoy = pb.find_envoy(args.envoy)
    if not envoy:
        raise SystemExit("no envoy binary")

    work = tempfile.mkdtemp(prefix="pathbench-")
    stack = ExampleStack(binary, work)
    envoy_processes = []
    try:
        stack.start(bench_config(stack))
        token = stack.token()
        # The jwt policy fetches the auth-service's keys once its pod is ready: until then, 401.
        if not wait_for(lambda: get(stack.web, "/app/dashboard", token)[0] == 200, timeout=30):
            raise SystemExit("gantry did not serve /app/dashboard; see " + stack.stderr)
        _, jwks = get(stack.web, "/auth/.well-known/jwks.json")
        app_pods = stack.pods("app-service")
        pods = []
        for pod in app_pods:
            host, _, port = pod["address"].rpartition(":")
            pods.append((host or pod["address"], int(port) if port.isdigit() else 8080))
        pod_pids = [pod["pid"] for pod in app_pods]

        envoys = {}
        for name, cache in (("envoy", False), ("envoy_cache", True)):
            port = free_port()
            config_path = os.path.join(work, name + ".json")
            with open(config_path, "w") as f:
                json.dump(envoy_config(port, pods, jwks.decode(), cache), f)
            process = subprocess.Popen(
                [envoy, "-c", config_path, "--concurrency", "1", "--log-level", "error", "--disable-hot-restart"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, name + ".err"), "w"))
            envoy_processes.append(process)
            if not wait_for(lambda: get(port, "/app/dashboard", token)[0] == 200, timeout=30):
                raise SystemExit("%s did not serve /app/dashboard; see %s" % (name, os.path.join(work, name + ".err")))
            # The same user's dashboard as through gantry: Envoy forwarded the token's subject too.
            if json.loads(get(port, "/app/dashboard", token)[1]).get("user") != json.loads(get(stack.web, "/app/dashboard", token)[1]).get("user"):
                raise SystemExit("%s and gantry served different dashboards" % name)
            envoys[name] = (port, process)

        pin(stack.process.pid, "1")
        for _, process in envoys.values():
            pin(process.pid, "1")
        for pid in pod_pids:
            pin(pid, "0")
        versions = {"gantry": subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip(),
                    "envoy": subprocess.run([envoy, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]}
        pb.log("versions: %s" % versions)
        targets = {"gantry": (stack.web, stack.process)} | envoys
        rounds = {name: [] for name in targets}
        for round_number in range(args.rounds):
            pb.log("round %d" % (round_number + 1))
            for name, (port, process) in targets.items():
                rounds[name].append(measure(name, port, process.pid, pod_pids, token, args))

        def median(target, key):
            return statistics.median(r[key] for r in rounds[target])

        summary = {target: {key: median(target, key) for key in ("rps", "p50", "p99", "proxy_cpu_us", "rps_per_core", "pods_cpu_us")}
                   for target in rounds}
        ratios = {name: summary["gantry"]["rps_per_core"] / summary[name]["rps_per_core"] for name in envoys}
        lines = [
            "| whole path | req/s | p50 ms | p99 ms | proxy CPU µs/req | req/s per core | pods CPU µs/req |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for target in targets:
            s = summary[target]
            lines.append("| %s | %.0f | %.2f | %.2f | %.1f | %.0f | %.1f |" % (
                target, s["rps"], s["p50"], s["p99"], s["proxy_cpu_us"], s["rps_per_core"], s["pods_cpu_us"]))
        lines.append("")
        for name, ratio in ratios.items():
            lines.append("gantry serves %.2fx %s's requests per second per core (target: at least 2x)." % (ratio, name))
        print("\n".join(lines))
        os.makedirs(args.out, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        with open(os.path.join(args.out, "path-%s.json" % stamp), "w") as f:
            json.dump({"versions": versions, "rounds": rounds, "summary": summary, "ratios": ratios,
                       "duration": args.duration, "connections": args.connections}, f, indent=1)
    finally:
        for process in envoy_processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
