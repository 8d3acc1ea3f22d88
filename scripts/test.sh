#!/usr/bin/env bash
# `make test`: the database bootstrap, then formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
source scripts/pgbouncer.sh

for tool in cargo rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null || { log "$tool is missing: install the Rust toolchain with rustup (rustfmt and clippy components)"; exit 1; }
done

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

db_up
trap 'pgbouncer_down; db_down_if_started' EXIT

log "migrating $PG_DB"
cargo run -q --locked -p fasttrack-cli -- migrate

log "cargo test"
results=$(mktemp)
cargo test --workspace --locked 2>&1 | tee "$results"

# The API tests again, with the service's pool behind PgBouncer in transaction
# mode (DATABASE_POOLER_MODE=transaction); the tests' own checks stay direct.
pgbouncer_up
log "cargo test: the API through PgBouncer (transaction mode)"
FASTTRACK_TEST_POOLER_URL="$PGBOUNCER_URL" cargo test --locked -p shared --test api 2>&1 | tee -a "$results"
# One closing line for the whole workspace (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$results"
rm -f "$results"
