#!/usr/bin/env bash
# Starts gantry as proxybench's gateway target, configured like its envoy_gw: a JWT check
# (HS256, the harness's local JWKS file, issuer and audience) and a route-wide rate limit that
# is never reached, in front of the benchmark's upstreams; one event loop, no access log.
# Usage: gantry-gateway.sh PORT UPSTREAMS JWKS_FILE ISSUER AUDIENCE RATE WORKDIR
set -euo pipefail
port=$1 upstreams=$2 jwks=$3 issuer=$4 audience=$5 rate=$6 workdir=$7
bin=${GANTRY_BIN:?set GANTRY_BIN to the gantry binary}
config="$workdir/gantry-gateway-$port.yaml"
{
  echo "runtime: {workers: 1}"
  echo "accessLog: {enabled: false}"
  echo "admin: {enabled: false}"
  echo "loadBalancer: {listeners: [{name: bench, port: $port}]}"
  echo "gateway:"
  echo "  policies:"
  echo "    - name: token"
  echo "      jwt: {keys: [{jwksFile: $jwks}], issuer: $issuer, audiences: [$audience]}"
  echo "    - name: limit"
  echo "      rateLimit: {requests: $rate, per: 1s, key: {route: true}}"
  echo "  routes: [{path: /, service: backends, policies: [token, limit]}]"
  echo "services:"
  echo "  - name: backends"
  echo "    loadBalancing: roundRobin"
  echo "    connectionPool: {maxIdlePerEndpoint: 1024}"
  echo "    endpoints:"
  for upstream in ${upstreams//,/ }; do echo "      - $upstream"; done
} >"$config"
exec "$bin" up "$config" --log-level warning
