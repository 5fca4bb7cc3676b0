#!/usr/bin/env bash
# Makes sure a headless Chromium and its WebDriver are installed, for the
# live board's browser test (tests/tests/board.rs), which fails without them,
# and NSS's certutil, with which that test makes the browser trust its CA
# for the board over TLS.
#
# Debian's packages: /usr/bin/chromium and /usr/bin/chromedriver, of the
# same version (chromedriver refuses a browser of another major version).
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/certutil ]; then
  exit 0
fi

echo "installing chromium, chromium-driver and libnss3-tools (Debian packages)..." >&2
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get: install Chromium, chromedriver and certutil as /usr/bin/chromium, /usr/bin/chromedriver and /usr/bin/certutil" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y chromium chromium-driver libnss3-tools
/usr/bin/chromedriver --version
