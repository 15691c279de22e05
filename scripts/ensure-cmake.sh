#!/usr/bin/env bash
# Makes sure `cmake` (>= 3.16) is on PATH, installing it when it is missing:
#   - as root with apt-get available: `apt-get install -y cmake` (after `apt-get update`);
#   - otherwise: `pip install cmake` (a wheel that ships the cmake binary).
# Prints the cmake version on success; exits non-zero with a message when nothing worked.
# Source it or run it; either way it only installs, it builds nothing.
set -euo pipefail

have_cmake() {
    command -v cmake >/dev/null 2>&1 && cmake --version >/dev/null 2>&1
}

if have_cmake; then
    cmake --version | head -n 1
    exit 0
fi

echo "ensure-cmake: cmake not found, installing it" >&2

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends cmake >/dev/null 2>&1; then
        apt-get update >/dev/null 2>&1 || true
        apt-get install -y --no-install-recommends cmake >/dev/null 2>&1 || true
    fi
fi

if ! have_cmake; then
    for pip in pip3 pip "python3 -m pip"; do
        if $pip --version >/dev/null 2>&1; then
            $pip install --quiet cmake >/dev/null 2>&1 && break
        fi
    done
    hash -r 2>/dev/null || true
fi

if ! have_cmake; then
    # pip --user installs land in ~/.local/bin, which may not be on PATH.
    if [ -x "$HOME/.local/bin/cmake" ]; then
        echo "ensure-cmake: cmake was installed in $HOME/.local/bin; add it to PATH" >&2
    fi
    echo "ensure-cmake: could not install cmake (tried apt-get as root and pip)." >&2
    echo "ensure-cmake: install CMake 3.16 or newer by hand and run this again." >&2
    exit 1
fi

cmake --version | head -n 1
