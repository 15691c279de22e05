#!/usr/bin/env bash
# The C test suite of libphx (tests/c), as a C consumer sees the library:
#
#   1. builds libphx and phx-testserver with cargo (debug profile unless PHX_CARGO_PROFILE=release);
#   2. builds tests/c with -Wall -Wextra -Werror -pedantic as C11 (shared and static library)
#      and the same sources as C++17, and runs them with ctest; every test case starts its own
#      phx-testserver (PHX_TESTSERVER_BIN);
#   3. reruns the C programs under valgrind memcheck (definite and indirect leaks are errors);
#   4. rebuilds them with -fsanitize=address,undefined and runs them (a test checks that the
#      sanitizers really are linked);
#   5. installs the library into a temporary prefix and builds two consumers against it: one
#      with find_package(phx CONFIG), one with pkg-config (shared and static each).
#
#   scripts/c-tests.sh [--no-valgrind] [--no-sanitize] [--no-consumers] [-R REGEX]
#
# Installs cmake (scripts/ensure-cmake.sh), valgrind and pkg-config when missing. Build trees
# go to build/c-tests/ (PHX_C_TESTS_BUILD overrides). Exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PHX_C_TESTS_BUILD:-$ROOT/build/c-tests}"
PROFILE="${PHX_CARGO_PROFILE:-debug}"
JOBS="${PHX_C_TESTS_JOBS:-3}"
RUN_VALGRIND=1
RUN_SANITIZE=1
RUN_CONSUMERS=1
FILTER=()

while [ $# -gt 0 ]; do
    case "$1" in
        --no-valgrind) RUN_VALGRIND=0 ;;
        --no-sanitize) RUN_SANITIZE=0 ;;
        --no-consumers) RUN_CONSUMERS=0 ;;
        -R) FILTER=(-R "$2"); shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "c-tests: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '\n==> %s\n' "$*"; }
die() { echo "c-tests: $*" >&2; exit 1; }

apt_install() {
    # apt_install PACKAGE: as root with apt-get only; false otherwise.
    [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null 2>&1 && return 0
    apt-get update >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >/dev/null 2>&1
}

# ---- tools -----------------------------------------------------------------------------------
"$ROOT/scripts/ensure-cmake.sh" >/dev/null || die "cmake is required (see scripts/ensure-cmake.sh)"
command -v cc >/dev/null 2>&1 || die "a C compiler (cc) is required"
if [ "$RUN_VALGRIND" = 1 ] && ! command -v valgrind >/dev/null 2>&1; then
    echo "c-tests: installing valgrind" >&2
    apt_install valgrind || die "valgrind is missing and could not be installed (apt-get install valgrind), or pass --no-valgrind"
fi
if [ "$RUN_CONSUMERS" = 1 ] && ! command -v pkg-config >/dev/null 2>&1; then
    echo "c-tests: installing pkg-config" >&2
    apt_install pkg-config || die "pkg-config is missing and could not be installed, or pass --no-consumers"
fi

# ---- the Rust side ------------------------------------------------------------------------------
say "cargo build -p phx -p phx-testserver ($PROFILE)"
cd "$ROOT"
CARGO_FLAGS=()
[ "$PROFILE" = release ] && CARGO_FLAGS=(--release)
cargo build "${CARGO_FLAGS[@]}" -p phx -p phx-testserver
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVER="$TARGET_DIR/$PROFILE/phx-testserver"
[ -x "$SERVER" ] || die "no test server at $SERVER"
export PHX_TESTSERVER_BIN="$SERVER"
if [ "$PROFILE" = debug ]; then BUILD_TYPE=Debug; else BUILD_TYPE=RelWithDebInfo; fi

FAILED_PHASES=()
TOTAL_PASSED=0
TOTAL_FAILED=0

# run_ctest NAME BUILD_DIR [ctest args...]: runs ctest, adds its counts to the totals.
run_ctest() {
    local name="$1" dir="$2" log rc=0 passed failed total
    shift 2
    log="$dir/ctest-$name.log"
    say "ctest: $name"
    (cd "$dir" && ctest --output-on-failure --timeout 180 "$@" "${FILTER[@]}") 2>&1 | tee "$log" || rc=$?
    total=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\2/p' "$log" | tail -n 1)
    failed=$(sed -n 's/.*tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1/p' "$log" | tail -n 1)
    total=${total:-0}
    failed=${failed:-0}
    passed=$((total - failed))
    TOTAL_PASSED=$((TOTAL_PASSED + passed))
    TOTAL_FAILED=$((TOTAL_FAILED + failed))
    if [ "$rc" != 0 ] || [ "$failed" != 0 ] || [ "$total" = 0 ]; then
        FAILED_PHASES+=("$name")
        [ "$total" = 0 ] && TOTAL_FAILED=$((TOTAL_FAILED + 1))
    fi
    return 0
}

configure_build() {
    # configure_build DIR [cmake args...]
    local dir="$1"
    shift
    cmake -S "$ROOT/tests/c" -B "$dir" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
        -DPHX_CARGO_PROFILE="$PROFILE" -DPHX_TESTSERVER_BIN="$SERVER" "$@" >"$dir.configure.log" 2>&1 ||
        { cat "$dir.configure.log"; die "configuring $dir failed"; }
    if ! cmake --build "$dir" -j 2 >"$dir.build.log" 2>&1; then
        cat "$dir.build.log"
        die "building $dir failed"
    fi
    grep -i 'warning' "$dir.build.log" || true
}

mkdir -p "$BUILD"
START=$(date +%s)

# ---- 1. C11 + C++17 + static ---------------------------------------------------------------------
say "build tests/c (C11, C++17, static)"
VALGRIND_OPT=OFF
[ "$RUN_VALGRIND" = 1 ] && VALGRIND_OPT=ON
configure_build "$BUILD/plain" -DPHX_TESTS_CXX=ON -DPHX_TESTS_STATIC=ON -DPHX_TESTS_VALGRIND="$VALGRIND_OPT"
run_ctest plain "$BUILD/plain" -LE valgrind -j "$JOBS"

# ---- 2. valgrind -----------------------------------------------------------------------------------
if [ "$RUN_VALGRIND" = 1 ]; then
    run_ctest valgrind "$BUILD/plain" -L valgrind -j 2
fi

# ---- 3. ASan + UBSan -------------------------------------------------------------------------------
if [ "$RUN_SANITIZE" = 1 ]; then
    say "build tests/c with -fsanitize=address,undefined"
    configure_build "$BUILD/sanitize" -DPHX_TESTS_SANITIZE=ON -DPHX_TESTS_CXX=OFF -DPHX_TESTS_STATIC=ON
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
        run_ctest sanitize "$BUILD/sanitize" -j "$JOBS"
fi

# ---- 4. consumers of the installed library ------------------------------------------------------------
if [ "$RUN_CONSUMERS" = 1 ] && [ ${#FILTER[@]} = 0 ]; then
    PREFIX="$BUILD/prefix"
    rm -rf "$PREFIX"
    say "cmake --install into $PREFIX"
    cmake --install "$BUILD/plain" --prefix "$PREFIX" >"$BUILD/install.log" 2>&1 ||
        { cat "$BUILD/install.log"; die "cmake --install failed"; }
    ls -l "$PREFIX"/lib*/libphx* | sed 's/^/    /'

    consumer_fail() { echo "c-tests: consumer: $*" >&2; TOTAL_FAILED=$((TOTAL_FAILED + 1)); FAILED_PHASES+=("consumer: $*"); }
    consumer_ok() { echo "    ok $*"; TOTAL_PASSED=$((TOTAL_PASSED + 1)); }

    say "consumer: find_package(phx CONFIG)"
    rm -rf "$BUILD/consumer-cmake"
    if cmake -S "$ROOT/tests/c/consumer-cmake" -B "$BUILD/consumer-cmake" -DCMAKE_PREFIX_PATH="$PREFIX" \
            >"$BUILD/consumer-cmake.log" 2>&1 &&
        cmake --build "$BUILD/consumer-cmake" >>"$BUILD/consumer-cmake.log" 2>&1; then
        run_ctest consumer-cmake "$BUILD/consumer-cmake"
        if readelf -d "$BUILD/consumer-cmake/consumer" | grep -q 'NEEDED.*\[libphx.so.0\]'; then
            consumer_ok "consumer (cmake) records NEEDED libphx.so.0"
        else
            consumer_fail "the cmake consumer does not record NEEDED libphx.so.0"
        fi
    else
        cat "$BUILD/consumer-cmake.log"
        consumer_fail "find_package consumer did not build"
    fi

    say "consumer: pkg-config"
    export PKG_CONFIG_PATH="$(dirname "$(find "$PREFIX" -name phx.pc | head -n 1)")"
    PC_LIBDIR="$(pkg-config --variable=libdir phx)"
    echo "    pkg-config --modversion phx: $(pkg-config --modversion phx)"
    echo "    pkg-config --cflags --libs phx: $(pkg-config --cflags --libs phx)"
    echo "    pkg-config --static --libs phx: $(pkg-config --static --libs phx)"
    OUT="$BUILD/consumer-pkgconfig"
    mkdir -p "$OUT"
    # shellcheck disable=SC2046
    if cc -std=c11 -Wall -Wextra -Werror -pedantic "$ROOT/tests/c/consumer-pkgconfig/main.c" \
            $(pkg-config --cflags --libs phx) -Wl,-rpath,"$PC_LIBDIR" -o "$OUT/consumer" &&
        "$OUT/consumer"; then
        consumer_ok "pkg-config shared"
    else
        consumer_fail "pkg-config shared"
    fi
    # Static: the archive itself, plus Libs.private.
    STATIC_LIBS="$(pkg-config --static --libs-only-l phx | sed 's/-lphx\b//')"
    # shellcheck disable=SC2046,SC2086
    if cc -std=c11 -Wall -Wextra -Werror -pedantic "$ROOT/tests/c/consumer-pkgconfig/main.c" \
            $(pkg-config --cflags phx) "$PC_LIBDIR/libphx.a" $STATIC_LIBS -o "$OUT/consumer_static" &&
        "$OUT/consumer_static" && ! readelf -d "$OUT/consumer_static" | grep -q 'libphx'; then
        consumer_ok "pkg-config static"
    else
        consumer_fail "pkg-config static"
    fi
fi

ELAPSED=$(( $(date +%s) - START ))
say "summary (${ELAPSED}s after the cargo build)"
if [ ${#FAILED_PHASES[@]} -gt 0 ]; then
    printf '    failed: %s\n' "${FAILED_PHASES[@]}"
fi
echo "c-tests: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" = 0 ] && [ ${#FAILED_PHASES[@]} = 0 ]
