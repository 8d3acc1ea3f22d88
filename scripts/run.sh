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
if [ "$PG_STARTED_HERE" = 1 ] || [ "$DATABASE_URL" = "$(local_url)" ]; then
    log "PostgreSQL: psql $DATABASE_URL  (make db-stop stops it)"
else
    # Someone else's server: its password stays out of the terminal.
    log "PostgreSQL: $(printf '%s' "$DATABASE_URL" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#')"
fi
exec "${CARGO_TARGET_DIR:-target}/debug/fasttrack" serve
