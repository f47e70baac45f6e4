#!/bin/bash
# The whole test suite, as CI runs it: installs the peer tools, then format, lints, every test
# (including the ones that need network namespaces and real peers, so run it as root), the
# fuzz-corpus replays, the fuzz targets' build, and the benches' build.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n=== %s (%ss)\n' "$1" "$SECONDS"; }

step "install peer tools"
if [ "$(id -u)" = 0 ]; then
  bash scripts/install-tools.sh
else
  echo "not root: skipping scripts/install-tools.sh; tests that need peers or namespaces will fail" >&2
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo test (unit, proptest, corpus replay, real peers in namespaces)"
cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc

step "fuzz targets compile"
cargo check --locked --manifest-path fuzz/Cargo.toml

step "benches compile"
cargo bench --locked --workspace --no-run

step "done"
