#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and simulation tests, bad-input tests, and the
# end-to-end meeting in real headless Chromium. Installs what is missing (apt, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v cargo >/dev/null 2>&1 || die "cargo is missing; install Rust with rustup (https://rustup.rs)"
need cc gcc
need chromium chromium
build_web_client

say "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --quiet --all-targets -- -D warnings

say "== Rust tests"
cargo test --workspace

say "== end to end in headless Chromium"
cargo build --quiet -p signaling --bin bridge
BRIDGE_BIN="$PWD/target/debug/bridge" npm run --silent test:e2e
