#!/usr/bin/env python3
"""Soak: the built-in example under mixed load for a long while, gantry's memory sampled.

    GANTRY_BIN=.build/release/gantry python3 benchmarks/soak.py [--minutes 10] [--out FILE]

The load, all at once, for --minutes: keep-alive requests with the demo user's token (the
example's per-user limit answers most with 429 once they pass 100 a second), a new connection
per request, requests without a token (401), chunked 256 KiB uploads (streamed bodies), and
h2load's HTTP/2 over TLS with the token (10 connections, 10 streams each, 50 requests a second
each), and the auth service's key set (200, no policy), each way. gantry's resident memory
(VmRSS) is read every 5 seconds. The same load runs 30 s first, as a warm-up: what the first
requests allocate for good (pools, caches, TLS and HPACK state) is the baseline, not a leak. It
passes when memory, once the load stops and the idle connections are gone (the listener's
60 s idle timeout), is within 10% of that baseline.
"""
import argparse, http.client, os, shutil, subprocess, sys, tempfile, threading, time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from example_stack import ExampleStack  # noqa: E402

BIN = os.environ.get("GANTRY_BIN", ".build/release/gantry")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", help="also write the summary (markdown) here")
    arguments = parser.parse_args()
    work = tempfile.mkdtemp(prefix="gantry-soak-")
    stack = ExampleStack(os.path.abspath(BIN), work)
    try:
        stack.start(stack.config())
        token = stack.token()
        time.sleep(5)
        cold = stack.rss_kib()
        statuses = Counter()
        # Warm-up: the same load for 30 s, then idle; what the first requests allocate for good
        # (pools, caches, TLS and HPACK state, the loops' buffers) is the baseline, not a leak.
        run_load(stack, token, 30, statuses, [])
        idle(stack)
        before = stack.rss_kib()
        statuses.clear()
        samples = [(0.0, before)]
        run_load(stack, token, arguments.minutes * 60, statuses, samples)
        idle(stack)
        after = stack.rss_kib()
        peak = max(kib for _, kib in samples)
        ratio = after / before
        summary = (
            "| minutes | requests | by status | RSS cold | after warm-up, idle | peak | after the soak, idle | after ÷ warm |\n"
            "|---:|---:|---|---:|---:|---:|---:|---:|\n"
            "| %g | %d | %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.3f |\n"
            % (arguments.minutes, sum(statuses.values()),
               ", ".join("%s: %d" % (k, v) for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0]))),
               cold / 1024, before / 1024, peak / 1024, after / 1024, ratio))
        print()
        print(summary)
        print("samples (s, MiB):", " ".join("%d:%.1f" % (t, kib / 1024) for t, kib in samples))
        if arguments.out:
            with open(arguments.out, "w") as f:
                f.write(summary)
        print("PASS: within 10%" if ratio <= 1.10 else "FAIL: memory did not come back within 10%")
        sys.exit(0 if ratio <= 1.10 else 1)
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


def idle(stack):
    """Waits for the idle keep-alive connections to close (the listener's idle timeout, 60 s)."""
    time.sleep(65)


def run_load(stack, token, seconds, statuses, samples):
    """The mixed load for `seconds`; RSS appended to `samples` every 5 s."""
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def count(key):
        with lock:
            statuses[key] += 1

    def client(keep_alive, headers, method="GET", path="/app/dashboard", body=None):
        connection = None
        while time.monotonic() < end:
            try:
                if connection is None or not keep_alive:
                    connection = http.client.HTTPConnection("127.0.0.1", stack.web, timeout=20)
                connection.request(method, path, body=body() if body else None, headers={"Host": "example.com", **headers})
                response = connection.getresponse()
                response.read()
                count(response.status)
                if not keep_alive or (response.getheader("Connection") or "").lower() == "close":
                    connection.close()
                    connection = None
            except Exception as error:
                count(type(error).__name__)
                connection = None
                time.sleep(0.05)

    def chunks():  # a body sent as it is made: chunked transfer encoding
        for _ in range(64):
            yield b"x" * 4096

    auth = {"Authorization": "Bearer " + token}
    threads = [
        threading.Thread(target=client, args=(True, auth)),
        threading.Thread(target=client, args=(False, auth)),
        threading.Thread(target=client, args=(True, {}, "GET", "/auth/.well-known/jwks.json")),
        threading.Thread(target=client, args=(False, {}, "GET", "/auth/.well-known/jwks.json")),
        threading.Thread(target=client, args=(True, {})),
        threading.Thread(target=client, args=(True, {**auth, "Content-Type": "application/octet-stream"}, "POST", "/app/upload", chunks)),
    ]

    def http2():
        while time.monotonic() < end:
            left = max(1, min(30, int(end - time.monotonic())))
            result = subprocess.run(
                ["h2load", "-D", str(left), "-c", "10", "-m", "10", "--rps=50", "-H", "authorization: Bearer " + token,
                 "--connect-to=127.0.0.1:%d" % stack.tls, "https://example.com:%d/app/dashboard" % stack.tls],
                capture_output=True, text=True)
            for line in result.stdout.splitlines():
                if line.startswith("status codes:"):
                    for part in line.split(":", 1)[1].split(","):
                        number, kind = part.split()[:2]
                        with lock:
                            statuses["h2 " + kind] += int(number)
    if shutil.which("h2load"):
        threads.append(threading.Thread(target=http2))
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while time.monotonic() < end:
        time.sleep(5)
        samples.append((time.monotonic() - started, stack.rss_kib()))
        if len(samples) % 12 == 1:
            print("%5.0f s  RSS %6.1f MiB  %s" % (samples[-1][0], samples[-1][1] / 1024, dict(statuses)), flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
