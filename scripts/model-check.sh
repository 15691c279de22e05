#!/usr/bin/env bash
# Model checks (loom) of the C surface's cross-thread protocols: the event queue's waiting and
# closing, and the completion hand-off of operations the engine discards. loom runs each test
# body under every interleaving of its threads; a lost wake-up shows as a deadlock.
#
# Separate build (cfg phx_loom) in target/loom. Takes about a minute after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
RUSTFLAGS="--cfg phx_loom ${RUSTFLAGS:-}" LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" \
    cargo test --release -p phx --lib model:: -- --test-threads=1
