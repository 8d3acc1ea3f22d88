#!/usr/bin/env bash
# `make test`: everything CI checks. The database bootstrap, formatting, lints,
# every test (directly and through PgBouncer), the template checks, a backup
# round trip and the arm64 Lambda build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
source scripts/pgbouncer.sh
source scripts/tools.sh

for tool in cargo rustfmt cargo-clippy rustup; do
    command -v "$tool" >/dev/null || { log "$tool is missing: install the Rust toolchain with rustup (rustfmt and clippy components)"; exit 1; }
done
# The API checks wait for the local server with curl.
if ! command -v curl >/dev/null; then
    apt_install curl
fi

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo check of the fuzz targets (fuzz/ has a lock file of its own)"
cargo check -q --manifest-path fuzz/Cargo.toml --locked --bins --target-dir "${CARGO_TARGET_DIR:-target}/fuzz-check"

log "dependencies: cargo deny (scripts/deny.sh)"
deny_summary=$(mktemp)
DENY_SUMMARY="$deny_summary" scripts/deny.sh

tools_up
log "cfn-lint template.yaml"
cfn-lint template.yaml
log "sam validate --lint"
AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template template.yaml >/dev/null
log "openapi-spec-validator openapi.yaml"
openapi-spec-validator openapi.yaml

db_up
trap 'pgbouncer_down; db_down_if_started' EXIT

log "migrating $PG_DB"
cargo run -q --locked -p fasttrack-cli -- migrate

# Everything the tests and servers log is kept for the secret scan at the end:
# the test output, the service's own logs in the API tests (at debug, so a leak
# would show; FASTTRACK_TEST_LOG) and the Schemathesis server's.
logs=$(mktemp -d -t fasttrack-test-logs.XXXXXX)
results="$logs/cargo-test.txt"
export FASTTRACK_TEST_LOG="$logs/service.log"

log "cargo test"
RUST_LOG=debug cargo test --workspace --locked 2>&1 | tee "$results"

# Behind PgBouncer in transaction mode (DATABASE_POOLER_MODE=transaction): the
# CLI's database commands, then the API tests again with the service's pool
# through the pooler; the tests' own checks stay direct. `--workspace --test`
# keeps the first pass's features, so nothing is built again. Server
# connections idle for 0.2 s are closed, so that each test's database can be
# dropped at its end (see scripts/pgbouncer.sh).
FASTTRACK_PGBOUNCER_SERVER_IDLE_TIMEOUT=0.2 pgbouncer_up
log "cargo test: the CLI through PgBouncer (transaction mode)"
FASTTRACK_TEST_POOLER_URL="$PGBOUNCER_URL" cargo test --workspace --locked --test cli -- --ignored 2>&1 | tee -a "$results"
log "cargo test: the API through PgBouncer (transaction mode)"
FASTTRACK_TEST_POOLER_URL="$PGBOUNCER_URL" RUST_LOG=debug cargo test --workspace --locked --test api 2>&1 | tee -a "$results"

log "the TypeScript client: regenerated, type-checked, end to end and in headless Chromium"
CLIENT_SERVER_LOG="$logs/client-server.log" RUST_LOG=debug scripts/client.sh 2>&1 | tee -a "$results"

log "Schemathesis: openapi.yaml against the local server"
SCHEMATHESIS_REPORT_DIR="$logs/schemathesis" RUST_LOG=debug scripts/schemathesis.sh 2>&1 | tee -a "$results"

log "soak: load, terminated connections and a PostgreSQL restart, 10 s each"
SOAK_SECONDS=10 SOAK_PROFILE=debug scripts/soak.sh

log "bench smoke (the harness at tiny sizes; no timings are judged)"
BENCH_SMOKE=1 scripts/bench.sh

log "backup and restore"
scripts/backup-roundtrip.sh

log "cargo lambda build --release --arm64"
rustup target add aarch64-unknown-linux-gnu >/dev/null
cargo lambda build --release --arm64 --workspace --exclude fasttrack-cli --exclude fasttrack-bench --exclude fasttrack-bench-hello --locked
for bootstrap in "${CARGO_TARGET_DIR:-target}"/lambda/*/bootstrap; do
    printf '    %-22s %s bytes\n' "$(basename "$(dirname "$bootstrap")")" "$(stat -c %s "$bootstrap")"
done

log "every function binary is a position-independent executable (readelf)"
# The arm64 bootstraps just built, and the x86_64 function binaries the tests
# above built (cheap: no build of its own).
pie=("${CARGO_TARGET_DIR:-target}"/lambda/*/bootstrap)
for function in functions/*/; do
    for profile in debug release; do
        binary="${CARGO_TARGET_DIR:-target}/$profile/$(basename "$function")"
        if [ -x "$binary" ]; then pie+=("$binary"); fi
    done
done
scripts/check-pie.sh "${pie[@]}"

log "secret scan of the logs"
scripts/scan-secrets.sh "$results" "$FASTTRACK_TEST_LOG" "$logs"/schemathesis/*.txt "$logs"/schemathesis/server.log "$logs/client-server.log"

# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$results"
# What the dependency advisories covered, said again where it cannot be missed.
log "$(cat "$deny_summary")"
rm -rf "$logs" "$deny_summary"
