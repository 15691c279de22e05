#!/usr/bin/env bash
# Runs one fuzz target for a given time: scripts/fuzz.sh <target> <seconds> [libFuzzer options]
# Targets: decode_text, decode_binary, engine (see fuzz/README.md). Needs the nightly toolchain;
# installs cargo-fuzz from crates.io when absent. The corpus grows in fuzz/corpus/<target>, seeded
# from the captured transcripts (fuzz/seeds/, regenerated each run); crashes land in
# fuzz/artifacts/<target>. Prints libFuzzer's final statistics (executions, corpus size).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh <target> <seconds> [libFuzzer options]}
seconds=${2:?usage: scripts/fuzz.sh <target> <seconds> [libFuzzer options]}
shift 2

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cargo run -q --manifest-path fuzz/Cargo.toml --bin seed_corpora -- \
    tests/fixtures/phoenix-1.7-transcripts.md fuzz/seeds
mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
# One process (the machine is shared); each input may run for at most 10 s.
exec cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@"
