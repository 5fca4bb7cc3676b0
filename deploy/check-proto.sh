#!/usr/bin/env bash
# Checks the gRPC contract (proto/, as it stands in the working tree) by
# buf's rules (buf.yaml): `buf lint`, then `buf breaking` against
#   - the baseline, the commit that last changed proto/BREAKING_BASELINE:
#     every change since it must be one that clients survive;
#   - the previous commit (HEAD~1; for a merge commit, the main line before
#     it), when it already has that baseline: this catches an addition made
#     and taken away again since the baseline; and
#   - HEAD, when the working tree changes the contract (a run before commit).
# A deliberate break moves the baseline (proto/BREAKING_BASELINE says how).
# Where git cannot tell what to compare against (no repository, a shallow
# clone, no previous commit) the comparison is skipped, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."

BASELINE_FILE=proto/BREAKING_BASELINE

buf lint
echo "buf lint: proto/ follows buf.yaml's rules"

skip() {
  echo "buf breaking: skipped: $*"
}

if ! git rev-parse --verify --quiet HEAD >/dev/null 2>&1; then
  skip "not a git checkout with a commit to compare against"
  exit 0
fi
if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
  skip "a shallow clone lacks the history that holds the baseline (git fetch --unshallow)"
  exit 0
fi
if [ -z "$(git ls-files -- "${BASELINE_FILE}")" ] || ! git diff --quiet HEAD -- "${BASELINE_FILE}"; then
  skip "${BASELINE_FILE} is changed in the working tree: this change is the new baseline"
  exit 0
fi
baseline="$(git log -1 --format=%H -- "${BASELINE_FILE}")"

scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

# Compares the working tree with the contract as `commit` had it.
against() {
  local commit="$1" what="$2" dir="${scratch}/$1"
  mkdir -p "${dir}"
  git archive "${commit}" buf.yaml proto | tar -x -C "${dir}"
  buf breaking --against "${dir}"
  echo "buf breaking: nothing breaks against ${what} ($(git rev-parse --short "${commit}"))"
}

against "${baseline}" "the baseline"

head="$(git rev-parse HEAD)"
if [ "${head}" != "${baseline}" ] && [ -n "$(git status --porcelain -- buf.yaml proto)" ]; then
  against "${head}" "the last commit"
fi

if ! previous="$(git rev-parse --verify --quiet 'HEAD~1^{commit}')"; then
  skip "against the previous commit: HEAD is the first commit"
elif [ "${previous}" = "${baseline}" ]; then
  : # compared above
elif ! git merge-base --is-ancestor "${baseline}" "${previous}"; then
  skip "against the previous commit: it predates the baseline, which HEAD brings in"
else
  against "${previous}" "the previous commit"
fi
