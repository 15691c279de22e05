#!/usr/bin/env bash
# Runs the official phoenix.js client (tests/js, pinned npm packages) against phx-testserver.
#
#   scripts/js-conformance.sh [extra node --test options, e.g. --test-name-pattern=presence]
#
# The test server must already be built (cargo build -p phx-testserver); this script does not build
# Rust code. PHX_TESTSERVER_BIN overrides the binary (default: target/debug/phx-testserver).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JS_DIR="$ROOT/tests/js"

die(){ echo "js-conformance: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20 or newer is required)"
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js 20 or newer is required, found $(node --version)"

BIN="${PHX_TESTSERVER_BIN:-$ROOT/target/debug/phx-testserver}"
case "$BIN" in
  /*) ;;
  *) BIN="$PWD/$BIN" ;;
esac
[ -f "$BIN" ] || die "test server binary not found at $BIN; build it first: cargo build -p phx-testserver"
[ -x "$BIN" ] || die "test server binary $BIN is not executable"

cd "$JS_DIR"

# node_modules is stale when npm's hidden lockfile is missing or older than the manifest/lock, or
# when an installed package version differs from the lock.
needs_install(){
  [ -d node_modules ] || return 0
  [ -f node_modules/.package-lock.json ] || return 0
  [ package-lock.json -nt node_modules/.package-lock.json ] && return 0
  [ package.json -nt node_modules/.package-lock.json ] && return 0
  node -e '
    const fs = require("fs")
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"))
    for (const [path, meta] of Object.entries(lock.packages || {})) {
      if (!path.startsWith("node_modules/") || meta.optional || meta.dev) continue
      let installed
      try { installed = JSON.parse(fs.readFileSync(path + "/package.json", "utf8")).version } catch { process.exit(1) }
      if (installed !== meta.version) process.exit(1)
    }
  ' && return 1
  return 0
}

if needs_install; then
  command -v npm >/dev/null 2>&1 || die "npm is not installed; it is needed to install tests/js dependencies (phoenix, ws)"
  echo "js-conformance: installing npm packages in tests/js (npm ci)" >&2
  npm ci --no-audit --no-fund || die "npm ci failed in $JS_DIR"
fi

shopt -s nullglob
TESTS=(*.test.mjs)
[ "${#TESTS[@]}" -gt 0 ] || die "no *.test.mjs files in $JS_DIR"

export PHX_TESTSERVER_BIN="$BIN"
exec node --test "$@" "${TESTS[@]}"
