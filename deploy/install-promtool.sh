#!/usr/bin/env bash
# Makes sure promtool is on PATH, to check the shipped alert rules
# (deploy/prometheus/alerts.yml) and run their unit tests (alerts_test.yml).
# promtool comes with Debian's prometheus package; only the tool is used,
# no Prometheus server is started.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  exit 0
fi

echo "installing promtool (Debian package prometheus)..." >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install promtool (the prometheus package) yourself" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi
log="$(mktemp)"
if ! { "${SUDO[@]}" apt-get update -qq && \
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y -qq --no-install-recommends prometheus; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "could not install prometheus (for promtool)" >&2
  exit 1
fi
rm -f "$log"
# The package starts a Prometheus server where a service manager runs;
# the tests need none.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${SUDO[@]}" systemctl stop prometheus || true
fi
command -v promtool >/dev/null
