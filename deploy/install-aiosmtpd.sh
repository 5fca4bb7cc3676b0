#!/usr/bin/env bash
# Makes sure Python's aiosmtpd is importable by python3: the notify e-mail
# test (tests/tests/notify_email.rs) starts it as a real SMTP relay with
# STARTTLS. Only the library is used; no mail server is installed or run.
set -euo pipefail

if python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  exit 0
fi

echo "installing aiosmtpd (PyPI)..." >&2
if ! command -v python3 >/dev/null 2>&1; then
  echo "no python3: install python3 and then aiosmtpd yourself" >&2
  exit 1
fi
# As root, pip warns about running as root; a Python whose packages are
# managed by the system (PEP 668) refuses a plain install.
if ! python3 -m pip install --quiet --root-user-action=ignore aiosmtpd; then
  python3 -m pip install --quiet --root-user-action=ignore --break-system-packages aiosmtpd
fi
python3 -c 'import aiosmtpd' >/dev/null
