#!/usr/bin/env bash
# `make run`: the database bootstrap, migrations and demo data, then every route
# served on http://127.0.0.1:$PORT through the same handlers the Lambdas run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
source scripts/local-env.sh

db_up
cargo build -q --locked -p fasttrack-cli
fasttrack() { "${CARGO_TARGET_DIR:-target}/debug/fasttrack" "$@"; }
log "migrating"
fasttrack migrate
log "loading demo data"
fasttrack demo
log "PostgreSQL: psql $DATABASE_URL  (make db-stop stops it)"
exec "${CARGO_TARGET_DIR:-target}/debug/fasttrack" serve
