# Sourced by scripts/bench.sh and scripts/bench-instr.sh (needs ROOT): the phoenix_channels_client
# peers of the benchmark, each a cargo project of its own under bench/peers/ (so that their
# dependencies stay out of the workspace), built from crates.io when asked for.

peer_name() { # peer
  case "$1" in
    pcc) echo "phoenix_channels_client 0.1.2" ;;
    pcc09) echo "phoenix_channels_client 0.9.1" ;;
  esac
}

peer_bin() { # peer
  echo "$ROOT/bench/peers/$1/target/release/phx-bench-$1"
}

# Builds a peer in release (in its own directory, so that cargo reads that directory's
# configuration). Cargo's output goes to stderr. On failure prints why on stdout and returns 1
# when the registry does not offer the crate's version (the peer cannot be measured here), 2
# for any other failure.
build_peer() { # peer
  local log="$ROOT/target/bench-peer-$1.log" rc=0
  mkdir -p "$ROOT/target"
  (cd "$ROOT/bench/peers/$1" && cargo build --release) 2> "$log" || rc=$?
  cat "$log" >&2
  [ "$rc" = 0 ] && return 0
  if grep -q 'failed to select a version for the requirement `phoenix_channels_client' "$log"; then
    echo "the package registry does not offer $(peer_name "$1") ($(grep -m1 -o 'candidate versions found.*' "$log" || echo "cargo found no matching version"))"
    return 1
  fi
  echo "building bench/peers/$1 failed (see $log)"
  return 2
}
