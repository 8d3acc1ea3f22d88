#!/usr/bin/env bash
# `make run`: the database bootstrap, migrations and demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh

db_up
cargo build -q --locked -p fasttrack-cli
fasttrack() { "${CARGO_TARGET_DIR:-target}/debug/fasttrack" "$@"; }
log "migrating"
fasttrack migrate
log "loading demo data"
fasttrack demo
log "PostgreSQL is running: psql $DATABASE_URL  (stop it with: make db-stop)"
