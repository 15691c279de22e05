#!/usr/bin/env bash
# The whole test suite: formatting and lints, the Rust tests (codec, engine, FFI, test server,
# transcript replay, header freshness), the phoenix.js conformance suite, and the C suite
# (ctest, valgrind, ASan+UBSan, C++17, CMake and pkg-config consumers, the C++ header phx.hpp),
# and the Python bindings (a wheel built with maturin, installed in a fresh venv, pytest).
# Installs what it needs (npm packages, cmake, valgrind) on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "error: cargo is not installed (https://rustup.rs)" >&2; exit 1; }

stage "cargo fmt --check"
cargo fmt --all -- --check

stage "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p phx --no-default-features --all-targets -- -D warnings

stage "cargo build (library, test server)"
cargo build --workspace

stage "Rust tests"
cargo test --workspace

stage "Rust unit tests without TLS (cargo feature tls off)"
cargo test -p phx --no-default-features --lib

stage "fuzz targets type-check"
scripts/check-fuzz.sh

stage "phoenix.js conformance suite against phx-testserver"
scripts/js-conformance.sh

stage "C suite (with the C++ header's tests)"
scripts/c-tests.sh

stage "Python bindings (wheel in a fresh venv, pytest)"
scripts/python-tests.sh

stage "all stages passed"
