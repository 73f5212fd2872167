#!/usr/bin/env python3
"""Chaos under load: steady load through the built-in example while one failure at a time is
injected, with what each cost in requests and how long the path took to recover.

    GANTRY_BIN=.build/release/gantry python3 benchmarks/chaos.py [--phase-seconds 8] [--out FILE]

The example's file (`gantry example config`) runs with its pods, JWT and per-user rate limit,
with these changes, each needed by one injection: the rate limit is kept in a real Redis
(redis-server) so that Redis can fail, its quota is raised so the load itself is not limited,
the app-service's autoscaler is off (scaling would blur what each failure costs), app-service
retries timeouts and its response timeout is 2 s (a frozen pod must cost seconds, not 15), the
access log goes to a small tmpfs (root only; the phase is skipped otherwise), and a `flaky`
service behind /flaky has two endpoints, a well-behaved one and one that this script makes
misbehave (reset after the head, a garbage status line, a trickled body).

Load: 8 client threads, keep-alive, each sending one request after another (GET
/app/work?cpu=5ms with the demo user's token, unless a phase says otherwise). A request fails
when it raises (reset, timeout) or gets a 5xx. For each phase: requests sent and failed, the
retries gantry made (gantry_proxy_retries_total), the slowest request, and how long until the
system was back to normal, by what normal means for that failure (the killed pod replaced and
ready, the frozen pod out of the endpoints, a connection accepted again...).
"""
import argparse, http.client, os, re, shutil, signal, socket, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_stack import ExampleStack, free_port, wait_for  # noqa: E402

BIN = os.environ.get("GANTRY_BIN", ".build/release/gantry")


class FaultyUpstream:
    """An HTTP/1.1 endpoint whose behaviour the script switches: ok, reset (a head, then RST),
    garbage (a status line that is not HTTP), trickle (a 20-byte body, one byte per 100 ms)."""

    def __init__(self):
        self.mode = "ok"
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(128)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            connection, _ = self.server.accept()
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def serve(self, connection):
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = connection.recv(65536)
                    if not data:
                        return
                    buffer += data
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                mode = self.mode
                if mode == "reset":
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                if mode == "garbage":
                    connection.sendall(b"HTTX/9 what\r\n\r\n")
                    return
                if mode == "trickle":
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
                    for _ in range(20):
                        time.sleep(0.1)
                        connection.sendall(b"x")
                    continue
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass
        finally:
            connection.close()


class Load:
    """Client threads sending one request after another; every outcome is kept with its time."""

    def __init__(self, port, threads=8):
        self.port = port
        self.threads = threads
        self.target = ("GET", "/app/work?cpu=5ms", None, {})
        self.fresh_connections = False
        self.results = []  # (started, ended, ok, detail)
        self.lock = threading.Lock()
        self.running = True
        self.workers = [threading.Thread(target=self.work, daemon=True) for _ in range(threads)]
        for worker in self.workers:
            worker.start()

    def work(self):
        connection = None
        while self.running:
            method, path, body, headers = self.target
            started = time.monotonic()
            try:
                if connection is None or self.fresh_connections:
                    if connection is not None:
                        connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                connection.request(method, path, body=body, headers={"Host": "example.com", **headers})
                response = connection.getresponse()
                response.read()
                ok = response.status < 500
                detail = "" if ok else "status %d" % response.status
                if (response.getheader("Connection") or "").lower() == "close":
                    connection.close()
                    connection = None
            except Exception as error:  # a reset, a timeout, a refused connection
                ok, detail = False, type(error).__name__
                connection = None
                time.sleep(0.01)
            with self.lock:
                self.results.append((started, time.monotonic(), ok, detail))

    def mark(self):
        with self.lock:
            return len(self.results)

    def since(self, index):
        with self.lock:
            return self.results[index:]

    def stop(self):
        self.running = False
        for worker in self.workers:
            worker.join(timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase-seconds", type=float, default=8)
    parser.add_argument("--out", help="also write the table (markdown) here")
    arguments = parser.parse_args()
    binary = os.path.abspath(BIN)
    work = tempfile.mkdtemp(prefix="gantry-chaos-")
    processes = []
    mounted = None
    try:
        stack = ExampleStack(binary, work)
        redis_port = free_port()
        redis = shutil.which("redis-server")
        if redis:
            processes.append(subprocess.Popen([redis, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                                              stdout=subprocess.DEVNULL, cwd=work))
        log_dir = os.path.join(work, "logdisk")
        os.makedirs(log_dir)
        if os.geteuid() == 0 and subprocess.call(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", log_dir]) == 0:
            mounted = log_dir
        faulty = FaultyUpstream()
        good = FaultyUpstream()

        config = stack.config()
        store = ", store: {redis: 127.0.0.1:%d, onFailure: allow, timeout: 100ms}" % redis_port if redis else ""
        config = config.replace("rateLimit: {requests: 100, per: 1s, burst: 200, key: {claim: sub}}",
                                "rateLimit: {requests: 100000, per: 1s, key: {claim: sub}%s}" % store)
        config = config.replace("  - name: app-service\n    loadBalancing: leastRequest\n",
                                "  - name: app-service\n    loadBalancing: leastRequest\n"
                                "    timeouts: {response: 2s}\n"
                                "    retries: {attempts: 2, retryOn: [connectFailure, reset, timeout]}\n"
                                "    outlierDetection: {consecutiveConnectFailures: 3, baseEjectionTime: 10s}\n")
        config = config.replace("  routes:\n", "  routes:\n    - {host: example.com, path: /flaky, service: flaky}\n")
        # The autoscaler's block (the file's last) gives way to the flaky service.
        config = (config[:config.index("    # 2 pods at rest")]
                  + "  - name: flaky\n    loadBalancing: roundRobin\n    timeouts: {response: 1s}\n"
                  + "    endpoints: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n" % (faulty.port, good.port)
                  + config[config.index("admin: {port"):])
        access_log = os.path.join(log_dir, "access.log")
        config += "accessLog: {path: %s}\n" % access_log
        gantry = stack.start(config)
        processes.append(gantry)
        auth = {"Authorization": "Bearer " + stack.token()}
        web = stack.web
        load = Load(web)
        work_request = ("GET", "/app/work?cpu=5ms", None, auth)
        load.target = work_request
        time.sleep(2)
        rows = []

        def phase(name, inject=None, restore=None, target=None, fresh=False, settled=None, note="", since=None):
            """`settled`: whether the system is back to normal, polled from the injection (or,
            with `restore`, from the restoration, or from `since`) on."""
            check = settled

            def settled():
                try:
                    return check()
                except Exception:
                    return False
            load.target = target or work_request
            load.fresh_connections = fresh
            if mounted:
                os.truncate(access_log, 0)  # a 64 MiB disk: full only when a phase fills it
            time.sleep(0.5)
            retries_before = stack.counter("gantry_proxy_retries_total")
            start_index = load.mark()
            injected = time.monotonic()
            if inject:
                inject()
            end = injected + arguments.phase_seconds
            since = since or injected
            back = None
            while time.monotonic() < end or (restore is None and check and back is None and time.monotonic() < end + 60):
                if check and back is None and settled():
                    back = time.monotonic() - since
                time.sleep(0.1)
            if restore:
                restore()
                since = time.monotonic()
                end = since + arguments.phase_seconds / 2
                while time.monotonic() < end or (check and back is None and time.monotonic() < end + 60):
                    if check and back is None and settled():
                        back = time.monotonic() - since
                    time.sleep(0.1)
            results = load.since(start_index)
            failed = [r for r in results if not r[2]]
            slowest = max((r[1] - r[0] for r in results), default=0)
            reasons = sorted({r[3] for r in failed})
            after = "—" if check is None else ("%.1f s%s" % (back, " after it was undone" if restore else "") if back is not None else "NOT within 60 s")
            rows.append((name, len(results), len(failed), int(stack.counter("gantry_proxy_retries_total") - retries_before),
                         "%.2f s" % slowest, after, "; ".join(x for x in (", ".join(reasons[:3]), note) if x)))
            print("%-54s sent %6d failed %5d slowest %.2fs back %s %s" % (name, len(results), len(failed), slowest, after, ", ".join(reasons[:3])),
                  flush=True)

        def ready_app_pods():
            return [p for p in stack.pods("app-service") if p["ready"]]

        phase("baseline (no failure)")

        victim = {}

        def least_restarted():  # a pod restarted again would wait out CrashLoopBackOff (10 s)
            return min(stack.pods("app-service"), key=lambda p: p["restarts"])

        def kill_pod():
            chosen = least_restarted()
            victim.update(name=chosen["name"], pid=chosen["pid"])
            os.kill(chosen["pid"], signal.SIGKILL)

        def replaced():  # restarted (a new process for the same pod) and ready, beside the other
            return any(p["name"] == victim["name"] and p["pid"] != victim["pid"] for p in ready_app_pods()) and len(ready_app_pods()) == 2
        phase("app pod SIGKILL mid-response (GET)", kill_pod, settled=replaced)
        wait_for(lambda: len(ready_app_pods()) == 2)

        upload = ("POST", "/app/upload", b"x" * (512 * 1024), auth)
        phase("app pod SIGKILL mid-upload (POST, 512 KiB)", kill_pod, target=upload, settled=replaced,
              note="a POST already sent is not retried: it may have been acted on")
        wait_for(lambda: len(ready_app_pods()) == 2)

        def freeze():
            chosen = least_restarted()
            victim.update(name=chosen["name"], pid=chosen["pid"])
            os.kill(chosen["pid"], signal.SIGSTOP)
            victim["frozen"] = time.monotonic()

        def taken_out():  # out of the endpoints: its readiness probe failed
            return not any(p["name"] == victim["name"] for p in ready_app_pods())
        phase("app pod frozen (SIGSTOP): time until taken out", freeze, settled=taken_out,
              note="requests it held timed out (2 s) and were retried on the other pod")

        phase("the frozen pod: time from the freeze until liveness restarts it and it serves", settled=replaced,
              since=victim["frozen"],
              note="livenessProbe every 5 s, 3 failures; its second restart waits out CrashLoopBackOff's 10 s")
        wait_for(lambda: len(ready_app_pods()) == 2)

        flaky = ("GET", "/flaky", None, {})
        for mode, what, note in (
                ("reset", "resets after the head", "the head had reached the client: a close is all that is left to say"),
                ("garbage", "sends a garbage status line", "retried on the other endpoint"),
                ("trickle", "trickles its body (2 s a response)", "slow, not failed")):
            def inject(mode=mode):
                faulty.mode = mode

            def restore():
                faulty.mode = "ok"
            phase("/flaky: one of two endpoints " + what, inject, restore, target=flaky, note=note)

        if mounted:
            filler = os.path.join(mounted, "filler")

            def fill():
                os.truncate(access_log, 0)
                with open(filler, "wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                    except OSError:
                        pass
            dropped_before = stack.counter("gantry_access_log_dropped_lines_total")
            phase("access-log disk full (tmpfs), then space again", fill, lambda: os.remove(filler),
                  settled=lambda: os.path.getsize(access_log) > 0)
            dropped = stack.counter("gantry_access_log_dropped_lines_total") - dropped_before
            rows[-1] = rows[-1][:-1] + ("traffic went on; %d lines dropped, counted in /metrics and logged once" % dropped,)
        else:
            rows.append(("access-log disk full", "-", "-", "-", "-", "-", "skipped: mounting a tmpfs needs root"))

        with open("/proc/%d/limits" % gantry.pid) as f:
            soft = re.search(r"^Max open files\s+(\d+)", f.read(), re.M).group(1)

        def exhaust():
            # A soft limit below what gantry holds now: no new descriptor (an accepted connection,
            # a connection to a pod, a probe) until it is raised again.
            open_now = len(os.listdir("/proc/%d/fd" % gantry.pid))
            subprocess.check_call(["prlimit", "--pid", str(gantry.pid), "--nofile=%d:" % (open_now // 2)])

        def relieve():
            subprocess.check_call(["prlimit", "--pid", str(gantry.pid), "--nofile=%s:" % soft])

        def accepts():
            probe = http.client.HTTPConnection("127.0.0.1", web, timeout=1)
            probe.request("GET", "/app/work?cpu=1ms", headers={"Host": "example.com", **auth})
            return probe.getresponse().status == 200
        phase("file descriptors exhausted (prlimit), then freed", exhaust, relieve, fresh=True, settled=accepts,
              note="a new connection per request; they wait in the kernel's queue while gantry cannot accept")

        def jwks_down():
            stack.admin_post("/api/services/auth-service/scale", {"replicas": 0})

        def jwks_up():
            stack.admin_post("/api/services/auth-service/scale", {"replicas": 1})
        phase("JWKS service down (auth-service at 0 pods), then back", jwks_down, jwks_up,
              settled=lambda: any(p["ready"] for p in stack.pods("auth-service")), note="its keys are cached")

        if redis:
            def redis_down():
                processes[0].kill()
                processes[0].wait()

            def redis_up():
                processes[0] = subprocess.Popen([redis, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                                                stdout=subprocess.DEVNULL, cwd=work)
            store_failures = []

            def store_answers():  # the store's failure count stops growing
                store_failures.append(stack.counter("gantry_proxy_rate_limit_store_failures_total"))
                return len(store_failures) > 5 and store_failures[-1] == store_failures[-6]
            phase("Redis (shared rate limit) down, then back", redis_down, redis_up, settled=store_answers,
                  note="onFailure: allow lets requests through meanwhile")

        load.stop()
        header = ("| failure injected | requests | failed | retried by gantry | slowest request | back to normal | what happened |\n"
                  "|---|---:|---:|---:|---:|---|---|\n")
        table = header + "".join("| " + " | ".join(str(c) for c in row) + " |\n" for row in rows)
        print()
        print(table)
        if arguments.out:
            with open(arguments.out, "w") as f:
                f.write(table)
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        if mounted:
            subprocess.call(["umount", mounted])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
