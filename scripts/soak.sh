#!/usr/bin/env bash
# The soak: ten sockets through the C API with 100 channels, compressed schedules (heartbeat
# 100 ms), steady pushes and broadcasts, a network fault through the TCP fault proxy every few
# seconds, and a stalled event-queue consumer for a while (from 20 % to 40 % of the run).
# Prints RSS, open descriptors and threads each minute; passes (exit 0) when RSS at the end is
# less than 5 % above the figure after the first minute and descriptors and threads have not
# grown. Not part of the test suite.
#
#   SOAK_SECS=600 SOAK_FAULT_SECS=4 SOAK_REPORT_SECS=60 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p phx-testserver -p phx-bench --bin phx-testserver --bin phx-proxy --bin phx-soak
exec target/release/phx-soak --server target/release/phx-testserver --proxy target/release/phx-proxy
