#!/usr/bin/env bash
# Starts the whole system on a demo workload: nats-server with JetStream,
# baton-ingest and baton-projector on the demo catalog (targets of seconds),
# baton-gateway taking three STAT lab orders from the emergency department
# as HL7 v2 over MLLP (two resulted in time, one left to breach), and
# `batonctl simulate`, which plays a generated hospital day (every kind
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
BATON_GATEWAY_ID_SALT=demo-only-salt target/debug/baton-gateway \
  --mapping deploy/gateway/hl7-lab.json >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_port 2575

# Three STAT troponin orders from the emergency department, as the order
# entry system would send them; the lab's results for two follow 5 s later.
hl7_time() { date -u +%Y%m%d%H%M%S+0000; }
hl7_order() { # control placer
  printf 'MSH|^~\\&|OE|DEMO|LIS|DEMO|%s||ORM^O01|%s|P|2.5\rORC|NW|%s^OE|||SC||^^^^^S||%s||||ED\rOBR|1|%s^OE||TROP^Troponin T\r\n' \
    "$(hl7_time)" "$1" "$2" "$(hl7_time)" "$2"
}
hl7_result() { # control placer
  printf 'MSH|^~\\&|LIS|DEMO|OE|DEMO|%s||ORU^R01|%s|P|2.5\rOBR|1|%s^OE|L-%s^LIS|TROP%s%s|||F\r\n' \
    "$(hl7_time)" "$1" "$2" "$2" "||||||||||||||||||" "$(hl7_time)"
}
(
  { hl7_order O-1 DEMO-1; hl7_order O-2 DEMO-2; hl7_order O-3 DEMO-3; } >"$work/lab-orders.hl7"
  target/debug/batonctl hl7 send "$work/lab-orders.hl7" | sed 's/^/HL7 order ACK: /'
  sleep 5
  { hl7_result R-1 DEMO-1; hl7_result R-2 DEMO-2; } >"$work/lab-results.hl7"
  target/debug/batonctl hl7 send "$work/lab-results.hl7" | sed 's/^/HL7 result ACK: /'
) &
pids+=($!)

cat >&2 <<MSG
Baton is running: ingest on 127.0.0.1:50051, queries on 127.0.0.1:50052, NATS on $NATS_URL,
the HL7 gateway (MLLP) on 127.0.0.1:2575.
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
