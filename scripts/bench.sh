#!/usr/bin/env bash
# Benchmarks of libphx against a raw WebSocket floor, the official phoenix.js client and the
# phoenix_channels_client crate (two versions), on loopback, measured as ratios within one run.
# Not part of the test suite.
#
#   scripts/bench.sh [--quick] [--reps N] [--recv N] [--reqresp N] [--window N] [--latency N]
#                    [--sockets N] [--clients LIST] [--scenarios LIST] [--no-pin] [--timeout S]
#                    [--instr N] [--out FILE]
#
#   --quick        counts divided by 10 (sockets by 5) and one repetition: a smoke run
#   --reps N       repetitions of every (scenario, client); the report shows medians (default 3)
#   --recv N       server pushes in the receive scenario (default 1000000)
#   --reqresp N    pushes in the request/response scenario (default 200000)
#   --window N     pushes in flight in the request/response scenario (default 1000)
#   --latency N    round trips in the latency scenario (default 20000)
#   --sockets N    sockets in the memory scenario (default 1000)
#   --clients L    comma-separated subset of:
#                  floor,engine,c-cb,c-queue,c-batch,phoenix-js,pcc,pcc09 (pcc, pcc09:
#                  phoenix_channels_client 0.1.2 and 0.9.1 from crates.io, bench/peers/pcc and
#                  bench/peers/pcc09; a peer whose version the registry does not offer is left
#                  out with a note in the report)
#   --scenarios L  comma-separated subset of: recv,reqresp,latency,memory
#   --no-pin       do not pin the server to CPU 1 and the clients to CPU 0
#   --timeout S    limit for each client run, in seconds (default 600)
#   --max-other P  a run during which other processes used more than P % of one CPU is
#                  repeated, after waiting for the machine to be quiet (default 25; 0: never)
#   --instr N      also count instructions and allocations per message under callgrind
#                  (scripts/bench-instr.sh --n N) for the receive and request/response
#                  scenarios and every client but phoenix-js (default 100000; 0: skip)
#   --note TEXT    a paragraph for the report (for instance what else the machine was doing)
#   --out FILE     where to write the report (default docs/benchmarks.md; the chart of the
#                  ratios to the floor goes beside it, same name with .svg)
#
# Builds in release (cargo build --release -p phx -p phx-bench), compiles bench/c/phx_bench.c
# against include/phx.h and libphx.so, installs bench/js's pinned npm packages if needed (npm ci),
# then runs every client on every scenario against one phx-bench-server process, and writes
# the report (machine description, command line, a table per scenario). Loopback only; counts
# are capped and every client run is time-limited.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
COMMAND="scripts/bench.sh" # as run, quoted where needed, for the report
for a in "$@"; do
  case "$a" in
    *[!A-Za-z0-9_./,:=-]*) COMMAND+=" '${a//\'/\'\\\'\'}'" ;;
    *) COMMAND+=" $a" ;;
  esac
done

die() { echo "bench: $*" >&2; exit 1; }
say() { echo "bench: $*" >&2; }

REPS=3 RECV=1000000 REQRESP=200000 WINDOW=1000 LATENCY=20000 SOCKETS=1000
CLIENTS="floor,engine,c-cb,c-queue,c-batch,phoenix-js,pcc,pcc09" INSTR=100000
SCENARIOS="recv,reqresp,latency,memory"
PIN=1 OUT="docs/benchmarks.md" TIMEOUT=600 QUICK=0 MAX_OTHER=25 USER_NOTE=""
LOAD_AT_START="$(cut -d' ' -f1-3 /proc/loadavg)"

num() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 needs a number, got '$2'"; echo "$2"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=$(num "$1" "${2:-}"); shift ;;
    --recv) RECV=$(num "$1" "${2:-}"); shift ;;
    --reqresp) REQRESP=$(num "$1" "${2:-}"); shift ;;
    --window) WINDOW=$(num "$1" "${2:-}"); shift ;;
    --latency) LATENCY=$(num "$1" "${2:-}"); shift ;;
    --sockets) SOCKETS=$(num "$1" "${2:-}"); shift ;;
    --timeout) TIMEOUT=$(num "$1" "${2:-}"); shift ;;
    --max-other) MAX_OTHER=$(num "$1" "${2:-}"); shift ;;
    --instr) INSTR=$(num "$1" "${2:-}"); shift ;;
    --clients) CLIENTS="${2:-}"; shift ;;
    --scenarios) SCENARIOS="${2:-}"; shift ;;
    --no-pin) PIN=0 ;;
    --out) OUT="${2:-}"; shift ;;
    --note) USER_NOTE="${2:-}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  RECV=$((RECV / 10)) REQRESP=$((REQRESP / 10)) LATENCY=$((LATENCY / 10)) SOCKETS=$((SOCKETS / 5))
  REPS=1 INSTR=$((INSTR / 10))
fi
# Bounds: nothing here may run away with the machine.
[ "$REPS" -ge 1 ] && [ "$REPS" -le 9 ] || die "--reps must be 1..9"
[ "$RECV" -ge 1 ] && [ "$RECV" -le 10000000 ] || die "--recv must be 1..10000000"
[ "$REQRESP" -ge 1 ] && [ "$REQRESP" -le 10000000 ] || die "--reqresp must be 1..10000000"
[ "$WINDOW" -ge 1 ] && [ "$WINDOW" -le 100000 ] || die "--window must be 1..100000"
[ "$LATENCY" -ge 1 ] && [ "$LATENCY" -le 1000000 ] || die "--latency must be 1..1000000"
[ "$SOCKETS" -ge 1 ] && [ "$SOCKETS" -le 10000 ] || die "--sockets must be 1..10000"
[ "$INSTR" = 0 ] || { [ "$INSTR" -ge 1000 ] && [ "$INSTR" -le 2000000 ]; } || die "--instr must be 0 or 1000..2000000"
for c in ${CLIENTS//,/ }; do
  case "$c" in floor|engine|c-cb|c-queue|c-batch|phoenix-js|pcc|pcc09) ;; *) die "unknown client $c" ;; esac
done
for s in ${SCENARIOS//,/ }; do
  case "$s" in recv|reqresp|latency|memory) ;; *) die "unknown scenario $s" ;; esac
done
wants() { [[ ",$CLIENTS," == *",$1,"* ]]; }

command -v cargo >/dev/null || die "cargo is not installed"
command -v timeout >/dev/null || die "timeout (coreutils) is not installed"

# ---- pinning: server on CPU 1, clients on CPU 0 -----------------------------------------------
PIN_SERVER=() PIN_CLIENT=()
if [ "$PIN" = 1 ]; then
  if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 1) PIN_CLIENT=(taskset -c 0)
  else
    say "not pinning (needs taskset and 2 CPUs)"; PIN=0
  fi
fi

# ---- build --------------------------------------------------------------------------------------
say "building (release)"
cargo build --release -p phx -p phx-bench
BIN="$ROOT/target/release"
WORK="$ROOT/target/phx-bench"
mkdir -p "$WORK"
if wants c-cb || wants c-queue || wants c-batch; then
  command -v gcc >/dev/null || die "gcc is not installed (needed for the C client)"
  # A private copy of the library (under its SONAME), so a rebuild during the run cannot swap it.
  cp "$BIN/libphx.so" "$WORK/libphx.so.0"
  ln -sf libphx.so.0 "$WORK/libphx.so"
  gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$WORK/phx_bench_c" bench/c/phx_bench.c \
    -Iinclude -L"$WORK" -lphx -lpthread -Wl,-rpath,"$WORK"
fi
# The phoenix_channels_client peers (scripts/bench-peers.sh); a peer the registry cannot
# provide is dropped from the client list, and the report says why.
PEER_NOTE=""
source scripts/bench-peers.sh
for p in pcc pcc09; do
  wants "$p" || continue
  say "building the $p peer (bench/peers/$p)"
  why=$(build_peer "$p") && rc=0 || rc=$?
  [ "$rc" -le 1 ] || die "$why"
  if [ "$rc" = 1 ]; then
    say "leaving $p out: $why"
    CLIENTS=$( { tr ',' '\n' <<<"$CLIENTS" | grep -vx "$p" || true; } | paste -sd, -)
    PEER_NOTE+="${PEER_NOTE:+ }**Not measured**: \`$p\` ($(peer_name "$p")): $why."
  fi
done
if wants phoenix-js; then
  command -v node >/dev/null || die "node is not installed (needed for the phoenix.js client)"
  [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] || die "Node.js 20 or newer is required"
  if ! node -e '
      const fs = require("fs")
      const lock = JSON.parse(fs.readFileSync("bench/js/package-lock.json", "utf8"))
      for (const [path, meta] of Object.entries(lock.packages || {})) {
        if (!path.startsWith("node_modules/")) continue
        const installed = JSON.parse(fs.readFileSync("bench/js/" + path + "/package.json", "utf8")).version
        if (installed !== meta.version) process.exit(1)
      }' 2>/dev/null; then
    command -v npm >/dev/null || die "npm is not installed"
    say "installing bench/js packages (npm ci)"
    (cd bench/js && npm ci --no-audit --no-fund)
  fi
fi

# ---- server ---------------------------------------------------------------------------------------
need_fds=$((SOCKETS + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  ulimit -n "$need_fds" 2>/dev/null || die "need $need_fds file descriptors (ulimit -n)"
fi
SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
exec 3< <("${PIN_SERVER[@]}" "$BIN/phx-bench-server" --host 127.0.0.1 --port 0 --max-blast "$RECV" & echo "PID $!"; wait)
URL=""
for _ in 1 2; do # the pid and the server's URL line, in either order
  read -r -t 60 line <&3 || die "the server printed no URL"
  case "$line" in
    "PID "*) SERVER_PID="${line#PID }" ;;
    ws://127.0.0.1:*/socket/websocket) URL="$line" ;;
    *) die "unexpected server output: $line" ;;
  esac
done
[ -n "$URL" ] && [ -n "$SERVER_PID" ] || die "the server did not start"
export PHX_BENCH_SERVER_PID="$SERVER_PID"
say "server $URL (pid $SERVER_PID)"

# ---- runs -------------------------------------------------------------------------------------------
RESULTS="$WORK/results.txt"
: > "$RESULTS"

count_for() {
  case "$1" in recv) echo "$RECV" ;; reqresp) echo "$REQRESP" ;; latency) echo "$LATENCY" ;; memory) echo "$SOCKETS" ;; esac
}

client_cmd() { # client scenario: sets CMD
  local c="$1" s="$2" n
  n=$(count_for "$s")
  case "$c" in
    floor|engine)
      CMD=("$BIN/phx-bench-client" --client "$c" --scenario "$s" --url "$URL" \
        --n "$n" --window "$WINDOW" --sockets "$SOCKETS") ;;
    c-cb|c-queue|c-batch)
      CMD=("$WORK/phx_bench_c" "$URL" "${c#c-}" "$s" "$n" "$WINDOW") ;;
    pcc|pcc09)
      CMD=("$(peer_bin "$c")" --url "$URL" --scenario "$s" --n "$n" --window "$WINDOW") ;;
    phoenix-js)
      CMD=(node --expose-gc bench/js/bench.mjs --url "$URL" --scenario "$s" \
        --n "$n" --window "$WINDOW" --sockets "$SOCKETS") ;;
  esac
}

supports() { # client scenario: the C client's event-queue modes have no memory scenario
  [[ "$2" != memory || ( "$1" != c-queue && "$1" != c-batch ) ]]
}

# Interference check: CPU used by processes other than the client and the server during a run
# (system-wide busy time from /proc/stat, minus the client's CPU from `times`, minus the
# server's), and the time the hypervisor stole. Both are reported with the results.
HZ=$(getconf CLK_TCK)
stat_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $9; exit}' /proc/stat; }  # busy steal
# `times` must run in this shell (a subshell has no children of its own), so it writes to files.
children_cpu_delta() { cat "$WORK/times.0" "$WORK/times.1" | awk '
  function secs(x,  a) { split(x, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
  NR == 2 { t0 = secs($1) + secs($2) } NR == 4 { t1 = secs($1) + secs($2) }
  END { printf "%.3f", t1 - t0 }'; }
server_cpu() { cat /proc/"$SERVER_PID"/task/*/schedstat 2>/dev/null | awk '{ns += $1} END {printf "%.4f", ns / 1e9}'; }

# Waits (at most 10 minutes) until the whole machine uses less than MAX_OTHER % of one CPU
# over two seconds: another build or test run would distort every figure.
wait_quiet() {
  [ "$MAX_OTHER" -gt 0 ] || return 0
  local b0 b1 _s pct waited=0
  while :; do
    read -r b0 _s < <(stat_ticks); sleep 2; read -r b1 _s < <(stat_ticks)
    pct=$(( (b1 - b0) * 100 / (2 * HZ) ))
    [ "$pct" -lt "$MAX_OTHER" ] && return 0
    [ "$waited" = 0 ] && say "the machine is busy ($pct % of a CPU used by other processes); waiting"
    waited=$((waited + 2))
    if [ "$waited" -ge 600 ]; then say "still busy after 10 minutes; going on (see Interference)"; return 0; fi
  done
}

run_once() { # client scenario rep: sets LINE and OTHER_PCT
  local c="$1" s="$2" rep="$3" busy0 busy1 steal0 steal1 sc0 sc1 t0 t1 out
  client_cmd "$c" "$s"
  sc0=$(server_cpu) t0=$(date +%s.%N)
  read -r busy0 steal0 < <(stat_ticks)
  times > "$WORK/times.0"
  out=$(timeout "$TIMEOUT" "${PIN_CLIENT[@]}" "${CMD[@]}") \
    || die "$c $s (run $rep) failed or timed out: ${PIN_CLIENT[*]} ${CMD[*]}"
  times > "$WORK/times.1"
  read -r busy1 steal1 < <(stat_ticks)
  sc1=$(server_cpu) t1=$(date +%s.%N)
  LINE=$(grep '^RESULT ' <<<"$out" | tail -n 1) || die "$c $s (run $rep) printed no result"
  read -r extra OTHER_PCT < <(awk -v b="$((busy1 - busy0))" -v st="$((steal1 - steal0))" -v hz="$HZ" \
    -v c="$(children_cpu_delta)" \
    -v sv="$(awk -v a="$sc0" -v b="$sc1" 'BEGIN{print b - a}')" \
    -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" \
    'BEGIN { o = b / hz - c - sv; if (o < 0) o = 0
             printf "process_wall_s=%.3f,other_cpu_s=%.3f,steal_s=%.3f %d\n", w, o, st / hz, (w > 0 ? 100 * o / w : 0) }')
  LINE="$LINE sent=$(count_for "$s") rep=$rep ${extra//,/ }"
}

wait_quiet
started=$(date +%s)
for rep in $(seq 1 "$REPS"); do
  for s in ${SCENARIOS//,/ }; do
    for c in ${CLIENTS//,/ }; do
      supports "$c" "$s" || continue
      for attempt in 1 2 3; do
        run_once "$c" "$s" "$rep"
        if [ "$MAX_OTHER" = 0 ] || [ "$OTHER_PCT" -lt "$MAX_OTHER" ] || [ "$attempt" = 3 ]; then break; fi
        say "run $rep/$REPS of $c $s was disturbed (other processes: $OTHER_PCT % of a CPU); repeating"
        wait_quiet
      done
      echo "$LINE attempts=$attempt" >> "$RESULTS"
      say "run $rep/$REPS: ${LINE#RESULT }"
      sleep 0.3 # let the previous client's connections close on the server
    done
  done
done
say "all runs done in $(( $(date +%s) - started )) s"

# ---- deterministic counts (callgrind) ---------------------------------------------------------
# Load-independent: under callgrind the client's threads run one at a time.
INSTR_CLIENTS=$( { tr ',' '\n' <<<"$CLIENTS" | grep -v '^phoenix-js$' || true; } | paste -sd, -)
INSTR_SCENARIOS=$( { tr ',' '\n' <<<"$SCENARIOS" | grep -E '^(recv|reqresp)$' || true; } | paste -sd, -)
if [ "$INSTR" -gt 0 ] && [ -n "$INSTR_CLIENTS" ] && [ -n "$INSTR_SCENARIOS" ]; then
  say "counting instructions under callgrind (N = $INSTR)"
  scripts/bench-instr.sh --n "$INSTR" --clients "$INSTR_CLIENTS" --scenarios "$INSTR_SCENARIOS" \
    --records "$RESULTS" >&2
fi

# ---- report -------------------------------------------------------------------------------------
MACHINE="$WORK/machine.txt"
{
  echo "\$ nproc"; nproc
  echo "\$ lscpu | head -n 15"; lscpu | head -n 15
  echo "\$ uname -srm"; uname -srm
  echo "\$ free -m | head -n 2"; free -m | head -n 2
  echo "\$ rustc --version"; rustc --version
  if wants phoenix-js; then echo "\$ node --version"; node --version; fi
  if wants c-cb || wants c-queue || wants c-batch; then echo "\$ gcc --version | head -n 1"; gcc --version | head -n 1; fi
  [ "$INSTR" -gt 0 ] && valgrind --version
  echo "load average (1, 5, 15 min) at the start: $LOAD_AT_START"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "pinning: $([ "$PIN" = 1 ] && echo "server on CPU 1, clients on CPU 0 (taskset)" || echo none)"
  if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
    echo "source: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ", with uncommitted changes to src/ or Cargo.toml")"
  fi
} > "$MACHINE"

NOTE="$USER_NOTE${PEER_NOTE:+${USER_NOTE:+ }$PEER_NOTE}"
if [ "$QUICK" = 1 ]; then
  NOTE="${NOTE:+$NOTE }**Quick run** (\`--quick\`): counts divided by 10 (sockets by 5) and a single repetition; a smoke test, not a measurement."
fi
mkdir -p "$(dirname "$OUT")"
"$BIN/phx-bench-report" --results "$RESULTS" --machine "$MACHINE" --command "$COMMAND" \
  --date "$(date -u '+%Y-%m-%d %H:%M UTC')" ${NOTE:+--note "$NOTE"} \
  --svg "${OUT%.md}.svg" > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
say "wrote $OUT and ${OUT%.md}.svg (raw results: $RESULTS)"
