#!/usr/bin/env bash
# Starts gantry as one of proxybench's targets, configured like the nginx, HAProxy and Envoy
# targets: one event loop, round robin over the benchmark's upstreams with keep-alive pooling
# (idle pooled connections kept 300 s, as the nginx target's `keepalive_timeout`), no access
# log. With the gateway arguments it is configured like envoy_gw instead: a JWT check (HS256,
# the harness's local JWKS file, issuer and audience) and a route-wide rate limit that is never
# reached.
# Usage: gantry-proxy.sh PORT UPSTREAMS WORKDIR [JWKS_FILE ISSUER AUDIENCE RATE]
# Optional environment (tlsbench.py uses these; unset, the config is exactly as before):
#   GANTRY_TLS_CERT, GANTRY_TLS_KEY  PEM files: the listener terminates TLS with them (HTTP/2 is
#                                    then offered by ALPN, gantry's default on TLS listeners)
#   GANTRY_LIMITS                    a YAML flow mapping for loadBalancer.limits, e.g.
#                                    "{maxConnectionsPerClient: 20000, newConnectionsPerSecondPerClient: 100000}"
#   GANTRY_IDLE                      loadBalancer.timeouts.idle, e.g. 300s
#   GANTRY_OTLP                      an OTLP/HTTP traces URL: every request is exported as spans
#                                    (benchmarks/otlp-sink.py PORT is a receiver for this)
#   GANTRY_UPSTREAM_TLS              a YAML flow mapping for services[].tls: the upstreams speak
#                                    HTTPS (tunnelbench.py), e.g. "{caFile: ca.pem, serverName: localhost}"
#   GANTRY_WORKERS                   runtime.workers (default 1), e.g. 2 for the workers comparison
#   GANTRY_UPSTREAM_PROTOCOL         services[].protocol, e.g. h2c (tunnelbench.py's grpc scenario); the
#                                    plain listener then also takes HTTP/2 with prior knowledge
set -euo pipefail
port=$1 upstreams=$2 workdir=$3
bin=${GANTRY_BIN:?set GANTRY_BIN to the gantry binary}
config="$workdir/gantry-bench-$port.yaml"
listener="name: bench, port: $port"
if [ -n "${GANTRY_TLS_CERT:-}" ] || [ -n "${GANTRY_TLS_KEY:-}" ]; then
  : "${GANTRY_TLS_CERT:?set both GANTRY_TLS_CERT and GANTRY_TLS_KEY}" "${GANTRY_TLS_KEY:?set both GANTRY_TLS_CERT and GANTRY_TLS_KEY}"
  listener+=", tls: {certificates: [{certificate: $GANTRY_TLS_CERT, key: $GANTRY_TLS_KEY}]}"
fi
[ -z "${GANTRY_UPSTREAM_PROTOCOL:-}" ] || listener+=", http2: true"
load_balancer="listeners: [{$listener}]"
[ -z "${GANTRY_LIMITS:-}" ] || load_balancer+=", limits: $GANTRY_LIMITS"
[ -z "${GANTRY_IDLE:-}" ] || load_balancer+=", timeouts: {idle: $GANTRY_IDLE}"
{
  echo "runtime: {workers: ${GANTRY_WORKERS:-1}}"
  echo "accessLog: {enabled: false}"
  echo "admin: {enabled: false}"
  [ -z "${GANTRY_OTLP:-}" ] || echo "tracing: {otlp: {endpoint: \"$GANTRY_OTLP\"}}"
  echo "loadBalancer: {$load_balancer}"
  echo "gateway:"
  if [ $# -ge 7 ]; then
    echo "  policies:"
    echo "    - name: token"
    echo "      jwt: {keys: [{jwksFile: $4}], issuer: $5, audiences: [$6]}"
    echo "    - name: limit"
    echo "      rateLimit: {requests: $7, per: 1s, key: {route: true}}"
    echo "  routes: [{path: /, service: backends, policies: [token, limit]}]"
  else
    echo "  routes: [{path: /, service: backends}]"
  fi
  echo "services:"
  echo "  - name: backends"
  echo "    loadBalancing: roundRobin"
  echo "    connectionPool: {maxIdlePerEndpoint: 1024, idleTimeout: 300s}"
  [ -z "${GANTRY_UPSTREAM_TLS:-}" ] || echo "    tls: $GANTRY_UPSTREAM_TLS"
  [ -z "${GANTRY_UPSTREAM_PROTOCOL:-}" ] || echo "    protocol: $GANTRY_UPSTREAM_PROTOCOL"
  echo "    endpoints:"
  for upstream in ${upstreams//,/ }; do echo "      - $upstream"; done
} >"$config"
exec "$bin" up "$config" --log-level warning
