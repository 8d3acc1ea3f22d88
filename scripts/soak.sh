#!/usr/bin/env bash
# `make soak`: the load and fault runs against the local server. Three
# runs of `fasttrack-bench soak`, each on a fresh database: sustained load (a mix
# of reads, saves, submits and syncs from many users), the same with every
# service connection terminated in the middle, and the same with PostgreSQL
# restarted in the middle. After each, the database is checked against every
# write a client saw acknowledged. Any failed check fails the command.
#
#   make soak                       60 s per run, release binaries
#   SOAK_SECONDS=10 SOAK_PROFILE=debug scripts/soak.sh   what CI runs
#
# The restart run needs the private cluster (it restarts it); with a DATABASE_URL
# of your own it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh

seconds="${SOAK_SECONDS:-60}"
profile="${SOAK_PROFILE:-release}"
target="${CARGO_TARGET_DIR:-target}"
db_up
trap db_down_if_started EXIT

if [ "$profile" = release ]; then
    cargo build --release --locked -q -p fasttrack-bench -p fasttrack-cli
else
    cargo build --locked -q -p fasttrack-bench -p fasttrack-cli
fi
soak() {
    "$target/$profile/fasttrack-bench" soak --seconds "$seconds" --bin-dir "$target/$profile" "$@"
}

log "soak: sustained load, $seconds s"
soak --fault none
log "soak: service connections terminated mid-load"
soak --fault terminate
if [ "$DATABASE_URL" = "$(local_url)" ] && cluster_running; then
    log "soak: PostgreSQL restarted mid-load"
    soak --fault restart --restart-command "$(printf %q "$PWD/scripts/db.sh") restart"
else
    log "soak: the restart run needs the private cluster; skipped for this DATABASE_URL"
fi
