#!/usr/bin/env bash
# Runs the bridge with its embedded defaults: one process (signaling + SFU), SQLite in ./data,
# a self-signed HTTPS certificate made on first start, and a demo meeting.
# Extra arguments go to the bridge (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v cargo >/dev/null 2>&1 || die "cargo is missing; install Rust with rustup (https://rustup.rs)"
need cc gcc
build_web_client
say "building the bridge (release)..."
cargo build --release --quiet -p signaling --bin bridge
exec target/release/bridge "$@"
