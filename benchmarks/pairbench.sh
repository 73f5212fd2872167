#!/usr/bin/env bash
# Two gantry builds side by side, for a change too small for the interleaved runs' noise (±15%
# between runs on this machine): both run at once on CPU 1, each under its own load generator
# (CPU 0, with the nginx upstream), so that whatever else the machine does falls on both alike.
# The figure is CPU time per request from /proc (user + system), new ÷ old, per round.
#
# Which build sits in which slot (port, start order, load generator) alternates every round:
# the slots are not alike. Two copies of one build over HTTP/2 read 0.955 in one slot order,
# a bias as large as the changes measured; over HTTP/1 the slots matched within 0.8%. The
# geometric mean of the rounds cancels it; the per-order means show how large it was.
#
#   benchmarks/pairbench.sh OLD_BINARY NEW_BINARY [http1|c1000|h2|grpc] [ROUNDS] [SECONDS]
#   e.g. benchmarks/pairbench.sh /tmp/gantry-before .build/release/gantry h2 10 6
# http1: wrk, 50 keep-alive connections, GET / (3 bytes); c1000: the same with 1,000. h2: h2load over TLS, 50 connections
# x 10 streams. grpc: tunnelbench.py's gRPC unary calls, h2c both ways (h2load, 50 connections x
# 10 streams, to an nghttpd backend with `protocol: h2c`). Needs nginx, wrk, h2load, nghttpd,
# openssl (benchmarks/run installs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
old=$1 new=$2 mode=${3:-http1} rounds=${4:-10} seconds=${5:-6}
work=$(mktemp -d /tmp/pairbench-XXXXXX)
trap 'pkill -f "$work/" 2>/dev/null || true; nginx -p "$work" -c "$work/upstream.conf" -s stop 2>/dev/null || true' EXIT

cat >"$work/upstream.conf" <<EOF
worker_processes 1;
pid $work/upstream.pid;
error_log $work/upstream-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:18380; location / { return 200 "ok\n"; } }
}
EOF
taskset -c 0 nginx -p "$work" -c "$work/upstream.conf"

# Each build configured as the interleaved runs configure gantry (gantry-proxy.sh: round robin,
# keep-alive pooling, no access log; tlsbench's limits and idle timeout).
export GANTRY_LIMITS="{maxConnectionsPerClient: 20000, newConnectionsPerSecondPerClient: 100000}" GANTRY_IDLE=300s
scheme=http upstream=127.0.0.1:18380
if [ "$mode" = grpc ]; then
  # As tunnelbench.py's grpc scenario: the answer is one length-prefixed message, then trailers.
  mkdir -p "$work/grpc/test.Echo"
  printf '\0\0\0\0\5hello' >"$work/grpc/test.Echo/Unary"
  printf '\0\0\0\0\2hi' >"$work/grpc-request.bin"
  taskset -c 0 nghttpd --no-tls -d "$work/grpc" "--trailer=grpc-status: 0" --workers=1 18383 >/dev/null 2>&1 &
  export GANTRY_UPSTREAM_PROTOCOL=h2c
  upstream=127.0.0.1:18383
fi
if [ "$mode" = h2 ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem"
  openssl req -x509 -new -key "$work/key.pem" -subj /CN=localhost -days 2 -out "$work/cert.pem" 2>/dev/null
  export GANTRY_TLS_CERT=$work/cert.pem GANTRY_TLS_KEY=$work/key.pem
  scheme=https
fi
start() {  # BINARY PORT SLOT: gantry-proxy.sh execs the binary, so $! is gantry itself
  GANTRY_BIN=$1 taskset -c 1 "$here/gantry-proxy.sh" "$2" "$upstream" "$work/$3" >"$work/$3.log" 2>&1 &
}

load() {  # PORT SECONDS OUTPUT
  if [ "$mode" = h2 ]; then
    taskset -c 0 h2load -t1 -c50 -m10 -D "$2" "$scheme://127.0.0.1:$1/" >"$3"
  elif [ "$mode" = grpc ]; then
    taskset -c 0 h2load -t1 -c50 -m10 -D "$2" -d "$work/grpc-request.bin" -H "content-type: application/grpc" -H "te: trailers" \
      "http://127.0.0.1:$1/test.Echo/Unary" >"$3"
  else
    taskset -c 0 wrk -t1 -c"$([ "$mode" = c1000 ] && echo 1000 || echo 50)" -d"$2" "$scheme://127.0.0.1:$1/" >"$3"
  fi
}
served() {  # OUTPUT: requests completed
  case $mode in h2|grpc) awk '/^requests:/ {print $8}' "$1" ;; *) awk '/requests in/ {print $1}' "$1" ;; esac
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

ratios=()
for round in $(seq "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then first=$old second=$new; else first=$new second=$old; fi
  mkdir -p "$work/a" "$work/b"
  start "$first" 18381 a
  pid_a=$!
  start "$second" 18382 b
  pid_b=$!
  for port in 18381 18382; do
    for _ in $(seq 100); do curl -sk -o /dev/null "$scheme://127.0.0.1:$port/" && break; sleep 0.1; done
  done
  load 18381 2 /dev/null & warm_a=$!
  load 18382 2 /dev/null & warm_b=$!
  wait $warm_a $warm_b
  a0=$(ticks $pid_a) b0=$(ticks $pid_b)
  load 18381 "$seconds" "$work/load-a.txt" & load_a=$!
  load 18382 "$seconds" "$work/load-b.txt" & load_b=$!
  wait $load_a $load_b
  a1=$(ticks $pid_a) b1=$(ticks $pid_b)
  kill $pid_a $pid_b; wait $pid_a $pid_b 2>/dev/null || true
  line=$(python3 - "$round" "$a0" "$a1" "$(served "$work/load-a.txt")" "$b0" "$b1" "$(served "$work/load-b.txt")" <<'EOF'
import sys
r, a0, a1, ra, b0, b1, rb = map(float, sys.argv[1:])
tick_us = 1e6 / 100  # /proc/PID/stat counts clock ticks of 10 ms
a, b = (a1 - a0) * tick_us / ra, (b1 - b0) * tick_us / rb
old, new = (a, b) if int(r) % 2 == 1 else (b, a)
print(f"{new / old:.4f} round {int(r)}: old {old:.2f} us/req, new {new:.2f} us/req")
EOF
)
  ratios+=("${line%% *}")
  echo "${line#* } new/old ${line%% *}"
done
python3 - "${ratios[@]}" <<'EOF'
import math, sys
r = [float(x) for x in sys.argv[1:]]
g = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")
print(f"new/old: geometric mean {g(r):.4f} over {len(r)} rounds (min {min(r):.3f}, max {max(r):.3f}); "
      f"old in the first slot {g(r[0::2]):.4f}, new in the first slot {g(r[1::2]):.4f}")
EOF
