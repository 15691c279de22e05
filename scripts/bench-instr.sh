#!/usr/bin/env bash
# Deterministic per-message costs of the benchmark's clients: user-space instructions and
# allocations (malloc calls) per message under callgrind, beside the wall-clock figures of
# scripts/bench.sh (which runs this script and puts the counts in its report), so that a
# regression shows whatever the machine's noise. Not part of the test suite.
#
#   scripts/bench-instr.sh [--n N] [--clients LIST] [--scenarios LIST] [--codec] [--records FILE]
#
#   --n N          messages in the measured run (default 100000); every client also runs with
#                  N/10, and the figures are the difference between the two runs divided by the
#                  difference in messages (warm-ups included), so start-up, connecting and
#                  joining cancel out
#   --clients L    comma-separated subset of: floor,engine,c-cb,c-queue,c-batch,pcc,pcc09
#                  (default floor,engine); the C clients (bench/c/phx_bench.c) count libphx.so
#                  too, pcc and pcc09 are phoenix_channels_client 0.1.2 and 0.9.1 (bench/peers/,
#                  built here when asked for; one the package registry does not offer is left
#                  out with a message)
#   --scenarios L  comma-separated subset of: recv,reqresp (default both; W = 1000)
#   --codec        also the codec alone (phx-bench-codec: decode of a push and of a reply,
#                  encode of a push, validation of a payload)
#   --records FILE also append one line per figure to FILE, for phx-bench-report:
#                  INSTR client=C scenario=S n=N ir_per_msg=I allocs_per_msg=A delivered=D sent=M
#                  (D and M: messages delivered and sent over both runs, from the clients'
#                  RESULT lines; the figures are per message sent)
#
# Needs valgrind. Prints a Markdown table. Under callgrind threads run one at a time, so the
# counts do not depend on scheduling; they do depend on the compiler and the libraries' versions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
die() { echo "bench-instr: $*" >&2; exit 1; }

N=100000 CLIENTS="floor,engine" SCENARIOS="recv,reqresp" CODEC=0 RECORDS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N="${2:-}"; shift ;;
    --clients) CLIENTS="${2:-}"; shift ;;
    --scenarios) SCENARIOS="${2:-}"; shift ;;
    --codec) CODEC=1 ;;
    --records) RECORDS="${2:-}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1000 ] && [ "$N" -le 2000000 ] || die "--n must be 1000..2000000"
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
command -v python3 >/dev/null || die "python3 is not installed"
for c in ${CLIENTS//,/ }; do
  case "$c" in floor|engine|c-cb|c-queue|c-batch|pcc|pcc09) ;; *) die "unknown client $c" ;; esac
done
for s in ${SCENARIOS//,/ }; do
  case "$s" in recv|reqresp) ;; *) die "unknown scenario $s" ;; esac
done
wants() { [[ ",$CLIENTS," == *",$1,"* ]]; }

cargo build --release -p phx -p phx-bench >&2
BIN="$ROOT/target/release"
WORK="$ROOT/target/phx-bench-instr"
mkdir -p "$WORK"
if wants c-cb || wants c-queue || wants c-batch; then
  command -v gcc >/dev/null || die "gcc is not installed (needed for the C client)"
  cp "$BIN/libphx.so" "$WORK/libphx.so.0"
  ln -sf libphx.so.0 "$WORK/libphx.so"
  gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$WORK/phx_bench_c" bench/c/phx_bench.c \
    -Iinclude -L"$WORK" -lphx -lpthread -Wl,-rpath,"$WORK"
fi
source scripts/bench-peers.sh
for p in pcc pcc09; do
  wants "$p" || continue
  why=$(build_peer "$p") && rc=0 || rc=$?
  [ "$rc" -le 1 ] || die "$why"
  if [ "$rc" = 1 ]; then
    echo "bench-instr: leaving $p out: $why" >&2
    CLIENTS=$( { tr ',' '\n' <<<"$CLIENTS" | grep -vx "$p" || true; } | paste -sd, -)
  fi
done
client_cmd() { # client scenario n: sets CMD
  case "$1" in
    floor|engine) CMD=("$BIN/phx-bench-client" --client "$1" --scenario "$2" --url "$URL" --n "$3" --window 1000) ;;
    c-*) CMD=("$WORK/phx_bench_c" "$URL" "${1#c-}" "$2" "$3" 1000) ;;
    pcc|pcc09) CMD=("$(peer_bin "$1")" --url "$URL" --scenario "$2" --n "$3" --window 1000) ;;
  esac
}

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
      client_cmd "$c" "$s" "$n"
      valgrind --tool=callgrind --callgrind-out-file="$WORK/$c.$s.$n.cg" \
        "${CMD[@]}" > "$WORK/$c.$s.$n.out" 2> "$WORK/$c.$s.$n.err" \
        || die "$c $s failed (see $WORK/$c.$s.$n.err)"
    done
    read -r ir0 m0 < <(totals "$WORK/$c.$s.$small.cg")
    read -r ir1 m1 < <(totals "$WORK/$c.$s.$N.cg")
    msgs=$(( N + $(warmup "$s" "$N") - small - $(warmup "$s" "$small") ))
    # Delivered: the measured phases' counts (successful replies in request/response).
    delivered=$(cat "$WORK/$c.$s.$small.out" "$WORK/$c.$s.$N.out" | awk '/^RESULT /{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } d += f["count"] - f["errors"]; delete f }
      END { print d + 0 }')
    awk -v w="$c $s" -v i=$((ir1 - ir0)) -v m=$((m1 - m0)) -v n="$msgs" \
      'BEGIN { printf "| %s | %.0f | %.2f |\n", w, i / n, m / n }'
    if [ -n "$RECORDS" ]; then
      awk -v c="$c" -v s="$s" -v N="$N" -v i=$((ir1 - ir0)) -v m=$((m1 - m0)) -v n="$msgs" \
        -v d="$delivered" -v sent=$((N + small)) \
        'BEGIN { printf "INSTR client=%s scenario=%s n=%d ir_per_msg=%.0f allocs_per_msg=%.3f delivered=%d sent=%d\n", c, s, N, i / n, m / n, d, sent }' >> "$RECORDS"
    fi
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
