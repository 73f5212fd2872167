#!/usr/bin/env bash
# Starts gantry as proxybench's custom target: one event loop, round robin over the benchmark's
# upstreams with keep-alive pooling, no access log — configured like the nginx, HAProxy and
# Envoy targets.
# Usage: gantry-proxy.sh PORT UPSTREAMS(comma-separated host:port) WORKDIR
set -euo pipefail
port=$1
upstreams=$2
workdir=$3
bin=${GANTRY_BIN:?set GANTRY_BIN to the gantry binary}
config="$workdir/gantry-bench-$port.yaml"
{
  echo "runtime: {workers: 1}"
  echo "accessLog: {enabled: false}"
  echo "admin: {enabled: false}"
  echo "loadBalancer: {listeners: [{name: bench, port: $port}]}"
  echo "gateway: {routes: [{path: /, service: backends}]}"
  echo "services:"
  echo "  - name: backends"
  echo "    loadBalancing: roundRobin"
  echo "    connectionPool: {maxIdlePerEndpoint: 1024}"
  echo "    endpoints:"
  for upstream in ${upstreams//,/ }; do echo "      - $upstream"; done
} >"$config"
exec "$bin" up "$config" --log-level warning
