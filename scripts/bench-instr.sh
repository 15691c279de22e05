#!/usr/bin/env bash
# Deterministic per-message costs of the Rust clients of the benchmark: user-space instructions
# and allocations (malloc calls) per message under callgrind, beside the wall-clock figures of
# scripts/bench.sh, so that a regression shows whatever the machine's noise. Not part of the
# test suite.
#
#   scripts/bench-instr.sh [--n N] [--clients LIST] [--scenarios LIST] [--codec]
#
#   --n N          messages in the measured run (default 100000); every client also runs with
#                  N/10, and the figures are the difference between the two runs divided by the
#                  difference in messages (warm-ups included), so start-up, connecting and
#                  joining cancel out
#   --clients L    comma-separated subset of: floor,engine (default both)
#   --scenarios L  comma-separated subset of: recv,reqresp (default both; W = 1000)
#   --codec        also the codec alone (phx-bench-codec: decode of a push and of a reply,
#                  encode of a push, validation of a payload)
#
# Needs valgrind. Prints a Markdown table. Under callgrind threads run one at a time, so the
# counts do not depend on scheduling; they do depend on the compiler and the libraries' versions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
die() { echo "bench-instr: $*" >&2; exit 1; }

N=100000 CLIENTS="floor,engine" SCENARIOS="recv,reqresp" CODEC=0
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N="${2:-}"; shift ;;
    --clients) CLIENTS="${2:-}"; shift ;;
    --scenarios) SCENARIOS="${2:-}"; shift ;;
    --codec) CODEC=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1000 ] && [ "$N" -le 2000000 ] || die "--n must be 1000..2000000"
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v python3 >/dev/null || die "python3 is not installed"

cargo build --release -p phx-bench >&2
BIN="$ROOT/target/release"
WORK="$ROOT/target/phx-bench-instr"
mkdir -p "$WORK"

# Instructions and malloc calls of a callgrind profile.
totals() {
  python3 - "$1" <<'PY'
import re, sys
names, ir, mallocs, pending = {}, 0, 0, None
for line in open(sys.argv[1], errors="replace"):
    if line.startswith("summary:"):
        ir = int(line.split()[1])
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        pending = line.startswith("cfn=") and names.get(m.group(1)) in ("malloc", "calloc")
        continue
    if pending and line.startswith("calls="):
        mallocs += int(line.split("=")[1].split()[0])
        pending = False
print(ir, mallocs)
PY
}

warmup() { # scenario n: the client's warm-up (bench/src/lib.rs)
  local w=$(($2 / 10)) cap
  case "$1" in recv) cap=50000 ;; *) cap=20000 ;; esac
  [ "$w" -lt 1 ] && w=1; [ "$w" -gt "$cap" ] && w=$cap; echo "$w"
}

SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
"$BIN/phx-bench-server" --host 127.0.0.1 --port 0 --max-blast "$((N + N / 10))" > "$WORK/server.out" &
SERVER_PID=$!
for _ in $(seq 50); do grep -q ws:// "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -m1 ws:// "$WORK/server.out") || die "the server printed no URL"

echo "| what | instructions per message | allocations per message |"
echo "|---|---:|---:|"
small=$((N / 10))
for s in ${SCENARIOS//,/ }; do
  for c in ${CLIENTS//,/ }; do
    for n in "$small" "$N"; do
      valgrind --tool=callgrind --callgrind-out-file="$WORK/$c.$s.$n.cg" \
        "$BIN/phx-bench-client" --client "$c" --scenario "$s" --url "$URL" --n "$n" \
        --window 1000 > "$WORK/$c.$s.$n.out" 2> "$WORK/$c.$s.$n.err" \
        || die "$c $s failed (see $WORK/$c.$s.$n.err)"
    done
    read -r ir0 m0 < <(totals "$WORK/$c.$s.$small.cg")
    read -r ir1 m1 < <(totals "$WORK/$c.$s.$N.cg")
    msgs=$(( N + $(warmup "$s" "$N") - small - $(warmup "$s" "$small") ))
    awk -v w="$c $s" -v i=$((ir1 - ir0)) -v m=$((m1 - m0)) -v n="$msgs" \
      'BEGIN { printf "| %s | %.0f | %.2f |\n", w, i / n, m / n }'
  done
done
if [ "$CODEC" = 1 ]; then
  for op in decode-push decode-reply encode validate; do
    for n in "$small" "$N"; do
      valgrind --tool=callgrind --callgrind-out-file="$WORK/codec.$op.$n.cg" \
        "$BIN/phx-bench-codec" --op "$op" --n "$n" > /dev/null 2>&1 || die "codec $op failed"
    done
    read -r ir0 m0 < <(totals "$WORK/codec.$op.$small.cg")
    read -r ir1 m1 < <(totals "$WORK/codec.$op.$N.cg")
    awk -v w="codec $op" -v i=$((ir1 - ir0)) -v m=$((m1 - m0)) -v n=$((N - small)) \
      'BEGIN { printf "| %s | %.0f | %.2f |\n", w, i / n, m / n }'
  done
fi
