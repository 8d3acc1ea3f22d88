#!/usr/bin/env bash
# `make test`: the database bootstrap, then formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh

for tool in cargo rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null || { log "$tool is missing: install the Rust toolchain with rustup (rustfmt and clippy components)"; exit 1; }
done

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

db_up
trap db_down_if_started EXIT

log "migrating $PG_DB"
cargo run -q --locked -p fasttrack-cli -- migrate

log "cargo test"
cargo test --workspace --locked
