#!/usr/bin/env bash
# `make bench`: the benchmark harness, in one command. Builds the
# release binaries (the Lambda functions for this machine, the local server,
# the lambda_runtime hello-world), then runs `fasttrack-bench run`: 100k and
# 10k generated users, the recompute at both sizes, each route under wrk at
# concurrency 1/2/4/8/16/32/64 beside pgbench running the route's own SQL
# (its best against the SQL's peak, its p99 against pgbench's), round trips
# from pg_stat_statements, cold starts (direct, and through PgBouncer in
# transaction mode), peak memory and binary sizes. Prints one table and writes
# bench/results/<date>.md.
#
#   make bench                       the full run (about 14 minutes on 2 cores,
#                                    plus the release build the first time)
#   BENCH_ARGS="--reuse" make bench  keep the generated databases of a former run
#   BENCH_ARGS="--reuse --only load --concurrency 16" make bench
#                                    one section (recompute, load, round-trips,
#                                    functions) at chosen settings
#   BENCH_ARGS="--reuse --only recompute --sweep-users 1000000" make bench
#                                    the recompute with a third database of 1M users
#                                    for the full sweep's scaling (optional: its
#                                    generation takes about 55 minutes on 2 cores
#                                    and 47 GB of disk; `--reuse` keeps it)
#   BENCH_SMOKE=1 make bench         the CI smoke: tiny sizes, debug binaries,
#                                    no result file; asserts no timings
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh

ensure_wrk() {
    command -v wrk >/dev/null && return 0
    apt_install wrk
}

ensure_wrk
db_up
# The functions' cold starts are also measured through a transaction-mode
# PgBouncer, production's topology (README: Connection poolers).
source scripts/pgbouncer.sh
pgbouncer_up
trap 'pgbouncer_down; db_down_if_started' EXIT
target="${CARGO_TARGET_DIR:-target}"
pgbench="$(pg_bindir)/pgbench"
read -r -a extra <<< "${BENCH_ARGS:-}"

if [ -n "${BENCH_SMOKE:-}" ]; then
    log "bench smoke: tiny sizes, debug binaries (no timings are judged)"
    cargo build --workspace --locked -q
    "$target/debug/fasttrack-bench" run --users 300 --small-users 100 --seconds 1 --runs 1 \
        --concurrency 1,4 --cold-runs 1 --rss-invocations 2 --round-trip-requests 2 --organization-members 300 \
        --bin-dir "$target/debug" --pgbench "$pgbench" --pooler-url "$PGBOUNCER_URL" "${extra[@]}"
else
    log "building the release binaries"
    cargo build --release --workspace --locked
    "$target/release/fasttrack-bench" run --bin-dir "$target/release" --pgbench "$pgbench" \
        --pooler-url "$PGBOUNCER_URL" --out "bench/results/$(date -u +%F).md" "${extra[@]}"
fi
