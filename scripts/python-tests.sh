#!/usr/bin/env bash
# The Python bindings (bindings/python, import name `phx`) as a user gets them:
#
#   1. builds phx-testserver with cargo (debug);
#   2. creates a fresh virtual environment (build/python-tests/venv) and installs maturin, cffi,
#      pytest, pytest-asyncio and mypy into it from PyPI;
#   3. builds the wheel with maturin (cargo builds libphx into it; debug profile unless
#      PHX_PY_PROFILE=release), installs it into the venv and type-checks the package (mypy --strict);
#   4. runs the pytest suite (bindings/python/tests) against the installed wheel; every test
#      starts its own phx-testserver.
#
#   scripts/python-tests.sh [pytest arguments...]
#
# Needs Rust, Python >= 3.10 with pip and venv (python3-venv is installed with apt-get when
# missing and running as root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PHX_PY_TESTS_BUILD:-$ROOT/build/python-tests}"
PROFILE="${PHX_PY_PROFILE:-dev}"
PYTHON="${PYTHON:-python3}"

say() { printf '\n==> %s\n' "$*"; }
die() { echo "python-tests: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is required"
command -v "$PYTHON" >/dev/null || die "$PYTHON is required"

say "cargo build -p phx-testserver"
cd "$ROOT"
cargo build -p phx-testserver
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export PHX_TESTSERVER_BIN="$TARGET_DIR/debug/phx-testserver"
[ -x "$PHX_TESTSERVER_BIN" ] || die "no test server at $PHX_TESTSERVER_BIN"

say "fresh virtual environment in $BUILD/venv"
rm -rf "$BUILD/venv" "$BUILD/wheels"
mkdir -p "$BUILD"
if ! "$PYTHON" -m venv "$BUILD/venv" >/dev/null 2>&1; then
    # Debian splits venv/ensurepip into python3-venv.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "python-tests: installing python3-venv" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends python3-venv >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 || true; apt-get install -y --no-install-recommends python3-venv >/dev/null 2>&1; } || true
    fi
    rm -rf "$BUILD/venv"
    "$PYTHON" -m venv "$BUILD/venv" || die "cannot create a virtual environment (apt-get install python3-venv)"
fi
VPY="$BUILD/venv/bin/python"
"$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VPY" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.9,<2" "cffi>=1.17" "pytest>=8" "pytest-asyncio>=0.24" "mypy>=1.10"

say "maturin build ($PROFILE profile)"
cd "$ROOT/bindings/python"
"$BUILD/venv/bin/maturin" build --profile "$PROFILE" --interpreter "$VPY" --out "$BUILD/wheels"
WHEEL="$(ls "$BUILD"/wheels/phx-*.whl | head -n 1)"
[ -f "$WHEEL" ] || die "maturin produced no wheel"
echo "    $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
"$VPY" -m pip install --quiet --disable-pip-version-check --force-reinstall "$WHEEL"

say "mypy --strict phx"
"$BUILD/venv/bin/mypy" --strict --config-file "$ROOT/bindings/python/pyproject.toml" "$ROOT/bindings/python/phx"

say "pytest (the installed wheel against phx-testserver)"
# From the tests directory, so `import phx` finds the installed package, not the source tree.
cd "$ROOT/bindings/python/tests"
START=$(date +%s)
rc=0
"$BUILD/venv/bin/pytest" -p no:cacheprovider -q --durations=5 "$@" || rc=$?
echo "python-tests: pytest finished in $(( $(date +%s) - START ))s"
exit "$rc"
