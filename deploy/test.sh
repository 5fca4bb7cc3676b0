#!/usr/bin/env bash
# Runs every test: unit and property tests of each crate, and the end-to-end
# tests, which start their own nats-server on free ports with temporary stores
# (and the board's browser test its own headless Chromium, the power-loss
# tests their own FUSE filesystem: tests/tests/power_loss.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-nats.sh >/dev/null
# Debian 12's nats-server 2.9.10 beside it (not on PATH), for the test that
# the services refuse a server older than Baton needs.
deploy/install-old-nats.sh >/dev/null
deploy/install-chromium.sh >/dev/null
deploy/install-fuse.sh >/dev/null
deploy/install-promtool.sh >/dev/null
# Python's aiosmtpd: the SMTP relay (with STARTTLS) of notify's e-mail test.
deploy/install-aiosmtpd.sh >/dev/null
cargo test --workspace --all-targets "$@"
# The alert rules: valid, and firing when their unit tests say they should.
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
