#!/usr/bin/env bash
# Regenerates include/phx.h from src/ffi with the pinned cbindgen (see tests/header.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
PHX_UPDATE_HEADER=1 cargo test --test header --quiet
echo "include/phx.h regenerated"
