#!/usr/bin/env bash
# Makes sure FUSE can be mounted, for the power-loss tests
# (tests/tests/power_loss.rs and crates/baton-lossyfs), which fail without it.
#
# baton-lossyfs mounts through the kernel's /dev/fuse: as root directly with
# mount(2), otherwise through the setuid fusermount3 of Debian's fuse3
# package, installed here when it is missing.
set -euo pipefail

if [ ! -e /dev/fuse ]; then
  # Nothing to install can help: the power-loss tests will fail, saying why.
  echo "warning: no /dev/fuse (modprobe fuse, or give the container --device /dev/fuse):" \
    "the power-loss tests will fail" >&2
  exit 0
fi
if command -v fusermount3 >/dev/null 2>&1; then
  exit 0
fi

echo "installing fuse3 (Debian package) for fusermount3..." >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install fusermount3 (the fuse3 package), or run the tests as root" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi
log="$(mktemp)"
if ! { "${SUDO[@]}" apt-get update -qq && \
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "could not install fuse3" >&2
  exit 1
fi
rm -f "$log"
command -v fusermount3 >/dev/null
