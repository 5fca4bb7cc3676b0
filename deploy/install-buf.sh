#!/usr/bin/env bash
# Makes sure buf is on PATH, to lint the gRPC contract (proto/) and check it
# for breaking changes (.ci/run).
#
# buf comes from the npm package @bufbuild/buf, pinned: the package carries
# the prebuilt binary for each platform as an optional dependency, so npm
# installs it from the registry with no download of its own. It goes into a
# directory of its own (BUF_PREFIX), apart from any global npm packages, and
# is linked into BUF_BIN.
set -euo pipefail

BUF_VERSION="${BUF_VERSION:-1.75.0}"
BUF_PREFIX="${BUF_PREFIX:-/usr/local/lib/baton-buf}"
BUF_BIN="${BUF_BIN:-/usr/local/bin}"

have_buf() {
  command -v buf >/dev/null 2>&1 && [ "$(buf --version 2>/dev/null)" = "${BUF_VERSION}" ]
}

if have_buf; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "need npm to install buf: apt-get update && apt-get install -y npm" >&2
  exit 1
fi

echo "installing buf ${BUF_VERSION} (npm package @bufbuild/buf)..." >&2
mkdir -p "${BUF_PREFIX}" "${BUF_BIN}"
npm install --prefix "${BUF_PREFIX}" --no-audit --no-fund --loglevel=error \
  --save-exact "@bufbuild/buf@${BUF_VERSION}" >&2
ln -sf "${BUF_PREFIX}/node_modules/.bin/buf" "${BUF_BIN}/buf"
hash -r
if ! have_buf; then
  echo "buf ${BUF_VERSION} did not install (is ${BUF_BIN} on PATH, before any other buf?)" >&2
  exit 1
fi
buf --version
