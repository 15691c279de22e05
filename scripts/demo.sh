#!/usr/bin/env bash
# The quick start, end to end, in one command:
#
#   scripts/demo.sh
#
# 1. builds libphx (cargo build --release -p phx) and the local test server (phx-testserver);
# 2. builds examples_c/chat.c against the library with CMake (installing CMake if missing);
# 3. starts phx-testserver on a free port, runs chat against it, stops the server.
#
# Exits with chat's status (0: connected, joined room:lobby, pushed new_msg, got the reply,
# left and disconnected). Build tree: build/demo (PHX_DEMO_BUILD overrides).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PHX_DEMO_BUILD:-$ROOT/build/demo}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo is required (install Rust)"
command -v cc >/dev/null 2>&1 || die "a C compiler (cc) is required"

step "cargo build --release -p phx"
cargo build --release -p phx
step "cargo build -p phx-testserver"
cargo build -p phx-testserver
SERVER="$TARGET_DIR/debug/phx-testserver"
[ -x "$SERVER" ] || die "no test server at $SERVER"

step "cmake: building examples_c/chat.c"
"$ROOT/scripts/ensure-cmake.sh" || die "CMake is needed to build the example"
mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DPHX_BUILD_EXAMPLES=ON -DPHX_BUILD_TESTS=OFF \
    >"$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; die "cmake configure failed"; }
cmake --build "$BUILD" --target chat >"$BUILD/build.log" 2>&1 || { cat "$BUILD/build.log"; die "building chat failed"; }
CHAT="$BUILD/examples_c/chat"

step "starting phx-testserver"
# The server's stdin is our pipe: when it closes (below, or if this script dies) the server exits.
coproc SRV { exec "$SERVER" --port 0 --exit-on-stdin-eof 2>"$BUILD/testserver.log"; }
SRV_IN=${SRV[1]}
SRV_OUT=${SRV[0]}
stop_server() {
    if [ -n "${SRV_PID:-}" ]; then
        eval "exec ${SRV_IN}>&-" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
        SRV_PID=
    fi
}
trap stop_server EXIT
URL=
read -r -t 30 URL <&"$SRV_OUT" || true
[ -n "$URL" ] || { cat "$BUILD/testserver.log" >&2; die "the test server printed no URL"; }
echo "server at $URL"

step "$CHAT $URL"
STATUS=0
"$CHAT" "$URL" || STATUS=$?
stop_server
trap - EXIT
if [ "$STATUS" = 0 ]; then
    step "demo succeeded"
else
    step "demo failed: chat exited with status $STATUS"
fi
exit "$STATUS"
