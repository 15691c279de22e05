#!/usr/bin/env bash
# Type-checks the cargo-fuzz targets in fuzz/ on the stable toolchain (fuzz/ is its own
# workspace, outside the root one). Running them needs nightly: see fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo check --manifest-path fuzz/Cargo.toml --bins "$@"
