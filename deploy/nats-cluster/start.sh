#!/usr/bin/env bash
# Starts Baton's three-node NATS JetStream cluster on loopback (client ports
# 4222-4224, routes 6222-6224, monitoring 8222-8224), stores in
# .nats-cluster/, and waits until JetStream is up on every node. Ctrl-C or
# SIGTERM stops all three. Then run the services with
#   NATS_URL=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
#   BATON_STREAM_REPLICAS=3
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/install-nats.sh >/dev/null
mkdir -p .nats-cluster

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop EXIT INT TERM

for n in 1 2 3; do
  nats-server -c "deploy/nats-cluster/n$n.conf" 2>".nats-cluster/n$n.log" &
  pids+=("$!")
done

for port in 8222 8223 8224; do
  ready=
  for _ in $(seq 1 150); do
    if curl -fsS "http://127.0.0.1:$port/healthz?js-enabled-only=true" >/dev/null 2>&1; then
      ready=yes
      break
    fi
    sleep 0.2
  done
  if [ -z "$ready" ]; then
    echo "nats node with monitoring port $port did not come up; see .nats-cluster/*.log" >&2
    exit 1
  fi
done
echo "nats cluster ready: nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224 (Ctrl-C stops it)"
wait
