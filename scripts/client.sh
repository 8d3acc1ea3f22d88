#!/usr/bin/env bash
# The TypeScript client (clients/typescript/) against the local server, and a
# real browser through it:
#   1. the client regenerated from the served /openapi.json: any difference
#      from the committed src/schema.d.ts fails (run `npm run generate` against
#      a local server and commit the result);
#   2. `tsc --noEmit`, then the build;
#   3. test/e2e.ts with Node, through the client: launch, progress, a save with
#      If-Match, its replay, a stale save's 412, a submit, dependencies, the
#      guru's roster;
#   4. test/browser.ts: headless Chromium opens a page on another origin that
#      calls the API through the compiled client (CORS, the exposed headers, a
#      real preflight, a 412's JSON), and one on an origin the API refuses.
#
#   scripts/client.sh            # honours DATABASE_URL, like make test
#   scripts/client.sh --update   # after a change to the spec: writes the new
#                                # src/schema.d.ts (commit it), then the rest
#
# Installs what is missing with apt-get (nodejs, npm, chromium); npm's cache
# lives outside the clone (FASTTRACK_NPM_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
source scripts/local-env.sh

DB_NAME="${FASTTRACK_CLIENT_DB:-fasttrack_client}"
RUNTIME_LOGIN=fasttrack_test_runtime
RUNTIME_PASSWORD=runtime-test-password-not-deployed
NPM_CACHE="${FASTTRACK_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fasttrack/npm}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CLIENT=clients/typescript
update=0
case "${1:-}" in
    "") ;;
    --update) update=1 ;;
    *) echo "usage: scripts/client.sh [--update]" >&2; exit 2 ;;
esac

missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
[ -x "$CHROMIUM" ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
log "client: node $(node --version), npm $(npm --version), $("$CHROMIUM" --version 2>/dev/null | head -n 1)"

log "client: npm ci (cache in $NPM_CACHE)"
(cd "$CLIENT" && npm ci --cache "$NPM_CACHE" --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)

db_up
owner_url=$(url_with_database "$DB_NAME")
maintenance_url=$(url_with_database postgres)
server_pid=""
server_log="${CLIENT_SERVER_LOG:-$(mktemp -t fasttrack-client-server.XXXXXX)}"
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    psql -X -q "$maintenance_url" -c "drop database if exists $DB_NAME with (force)" >/dev/null 2>&1 || true
    db_down_if_started
}
trap cleanup EXIT

log "client: a fresh database $DB_NAME with the demo data"
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$maintenance_url" \
    -c "drop database if exists $DB_NAME with (force)" -c "create database $DB_NAME" >/dev/null
cargo build -q --locked -p fasttrack-cli
fasttrack() { "${CARGO_TARGET_DIR:-target}/debug/fasttrack" "$@"; }
DATABASE_URL="$owner_url" fasttrack migrate >/dev/null
DATABASE_URL="$owner_url" fasttrack demo >/dev/null
# The server logs in as a member of fasttrack_runtime, as deployed (and as
# scripts/schemathesis.sh does).
psql -X -q -v ON_ERROR_STOP=1 "$owner_url" >/dev/null <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$RUNTIME_LOGIN') THEN
        CREATE ROLE $RUNTIME_LOGIN LOGIN PASSWORD '$RUNTIME_PASSWORD' IN ROLE fasttrack_runtime;
    END IF;
END \$\$;
SQL
host_port="${owner_url#*://}"; host_port="${host_port#*@}"
runtime_url="postgres://$RUNTIME_LOGIN:$RUNTIME_PASSWORD@$host_port"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
# The browser page's origin: a free port rather than 5173, so that two runs on
# one machine do not collide; the server is told to allow it, as a deployment's
# CorsAllowedOrigins would list the frontend's.
page_port=$(free_port)
api="http://127.0.0.1:$port"
log "client: the local server on $api, allowing the origin http://localhost:$page_port"
DATABASE_URL="$runtime_url" PORT="$port" CORS_ALLOWED_ORIGINS="http://localhost:$page_port" \
    RUST_LOG="${RUST_LOG:-info}" "${CARGO_TARGET_DIR:-target}/debug/fasttrack" serve >"$server_log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -fsS "$api/health" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$server_log" >&2; log "the server did not start"; exit 1; }
    sleep 0.1
done

log "client: regenerating src/schema.d.ts from $api/openapi.json"
if ! generated=$(cd "$CLIENT" && FASTTRACK_OPENAPI="$api/openapi.json" npm run -s generate 2>&1); then
    printf '%s\n' "$generated" >&2
    log "client: openapi-typescript failed"
    exit 1
fi
if [ "$update" = 1 ]; then
    changed=$(git diff --stat -- "$CLIENT/src/schema.d.ts" | tail -n 1 | sed 's/^ *//')
    log "client: src/schema.d.ts regenerated (${changed:-no change}): commit it"
elif ! git ls-files --error-unmatch "$CLIENT/src/schema.d.ts" >/dev/null 2>&1 \
    || ! git diff --exit-code --stat -- "$CLIENT/src/schema.d.ts"; then
    log "client: src/schema.d.ts differs from the served spec: run scripts/client.sh --update (or 'npm run generate' in $CLIENT against make run's server) and commit it"
    exit 1
fi

log "client: tsc --noEmit"
(cd "$CLIENT" && npx --no-install tsc --noEmit)
(cd "$CLIENT" && rm -rf dist && npx --no-install tsc)

log "client: end to end through the client (node dist/test/e2e.js)"
launch=$(fasttrack launch --lms-user-id 64a000000000000000000004 --email bob@demo.fasttrack.test --name "Bob Builder")
guru_token=$(DATABASE_URL="$runtime_url" fasttrack token --email guru@demo.fasttrack.test)
FASTTRACK_API="$api" FASTTRACK_LAUNCH="$launch" FASTTRACK_GURU_TOKEN="$guru_token" node "$CLIENT/dist/test/e2e.js"

log "client: a browser: headless Chromium on http://localhost:$page_port (node dist/test/browser.js)"
alice_token=$(DATABASE_URL="$runtime_url" fasttrack token --email alice@demo.fasttrack.test)
FASTTRACK_API="$api" FASTTRACK_TOKEN="$alice_token" FASTTRACK_PAGE_PORT="$page_port" CHROMIUM="$CHROMIUM" \
    node "$CLIENT/dist/test/browser.js"
if [ "$update" = 1 ]; then
    log "client: regenerated, type-checked, end to end and in a browser"
else
    log "client: generated client unchanged, type-checked, end to end and in a browser"
fi
