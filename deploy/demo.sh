#!/usr/bin/env bash
# Starts the whole system on a demo workload: nats-server with JetStream,
# baton-ingest and baton-projector on the demo catalog (targets of seconds),
# and `batonctl simulate`, which plays a generated hospital day (every kind
# of work in the catalog, a day/night curve, holds, reassignments, a
# disruption, ratings) 288 times faster and prints each breach the moment
# it is announced. Ctrl-C stops everything.
#
#   DEMO_SECONDS=90 deploy/demo.sh   # stop by itself after 90 s
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-nats.sh >/dev/null
echo "building Baton (the first build takes a few minutes)..." >&2
cargo build --quiet --bins

work=.demo
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_port() {
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1; see $work/*.log" >&2
  exit 1
}

export NATS_URL="nats://127.0.0.1:${NATS_PORT:-4222}"
nats-server -js -a 127.0.0.1 -p "${NATS_PORT:-4222}" -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
wait_port "${NATS_PORT:-4222}"

target/debug/baton-ingest --catalog deploy/demo-catalog.json >"$work/ingest.log" 2>&1 &
pids+=($!)
target/debug/baton-projector --catalog deploy/demo-catalog.json --data-dir "$work/views" >"$work/projector.log" 2>&1 &
pids+=($!)
wait_port 50051
wait_port 50052

cat >&2 <<MSG
Baton is running: ingest on 127.0.0.1:50051, queries on 127.0.0.1:50052, NATS on $NATS_URL.
The live board: http://127.0.0.1:9452/   Logs are in $work/. In another terminal try:
  target/debug/batonctl breaches --open
  target/debug/batonctl compliance repair-response
  target/debug/batonctl matrix
  target/debug/batonctl watch --warnings
  target/debug/batonctl tail 'baton.>'
  curl -s 127.0.0.1:9452/metrics      # Prometheus metrics (ingest: 9451)
Demo catalog targets: repair response 20 s (stat) / 30 s (urgent); some requests are never answered and breach.
A simulated day plays in 5 minutes (SIM_SPEED=288); the first breaches show within a minute.
MSG
target/debug/batonctl simulate --catalog deploy/demo-catalog.json \
  --duration "${DEMO_SECONDS:-0}" --speed "${SIM_SPEED:-288}" --per-day "${SIM_PER_DAY:-3000}" --seed "${SIM_SEED:-7}"
