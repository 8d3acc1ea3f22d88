#!/usr/bin/env bash
# The TypeScript client (clients/typescript/) against the local server, and a
# real browser through it:
#   1. the client regenerated from the served /openapi.json: any difference
#      from the committed src/schema.d.ts fails (`--update` writes it instead,
#      to be committed);
#   2. `tsc --noEmit`, then the build;
#   3. test/e2e.ts with Node, through the client: launch, progress, a save with
#      If-Match, its replay, a stale save's 412, a submit, dependencies, the
#      guru's roster;
#   4. test/browser.ts: headless Chromium opens a page on another origin that
#      calls the API through the compiled client (CORS, the exposed headers, a
#      real preflight, a 412's JSON), and one on an origin the API refuses;
#   5. test/app.ts: the reference app (app/) in headless Chromium, Carol's
#      flow from her launch to a submit, her bearer token made stale on the
#      way (`fasttrack token --expired`) so that the app refreshes it.
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
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' \
    || { log "client: node $(node --version) is too old: the client needs Node 18 or later"; exit 1; }
log "client: node $(node --version), npm $(npm --version), $("$CHROMIUM" --version 2>/dev/null | head -n 1)"

log "client: npm ci (cache in $NPM_CACHE)"
(cd "$CLIENT" && npm ci --cache "$NPM_CACHE" --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)

db_up
source scripts/local-server.sh
# The server's log: kept where CLIENT_SERVER_LOG says (make test scans it for
# secrets), else shown only when the server does not start.
server_log="${CLIENT_SERVER_LOG:-$(mktemp -t fasttrack-client-server.XXXXXX)}"
cleanup() {
    local_server_down
    if [ -z "${CLIENT_SERVER_LOG:-}" ]; then rm -f "$server_log"; fi
    db_down_if_started
}
trap cleanup EXIT

# The browser page's origin: a free port rather than 5173, so that two runs on
# one machine do not collide; the server is told to allow it, as a deployment's
# CorsAllowedOrigins would list the frontend's.
page_port=$(free_port)
log "client: the server allows the origin http://localhost:$page_port"
local_server_up "$DB_NAME" "$server_log" CORS_ALLOWED_ORIGINS="http://localhost:$page_port"
api="$LOCAL_SERVER_URL"

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
guru_token=$(token_for guru@demo.fasttrack.test)
FASTTRACK_API="$api" FASTTRACK_LAUNCH="$launch" FASTTRACK_GURU_TOKEN="$guru_token" node "$CLIENT/dist/test/e2e.js"

log "client: a browser: headless Chromium on http://localhost:$page_port (node dist/test/browser.js)"
alice_token=$(token_for alice@demo.fasttrack.test)
FASTTRACK_API="$api" FASTTRACK_TOKEN="$alice_token" FASTTRACK_PAGE_PORT="$page_port" CHROMIUM="$CHROMIUM" \
    node "$CLIENT/dist/test/browser.js"

log "client: the reference app in headless Chromium on http://localhost:$page_port (node dist/test/app.js)"
carol=carol@northwind.fasttrack.test
carol_launch=$(fasttrack launch --lms-user-id 64a000000000000000000005 --email "$carol" --name "Carol Northwind")
FASTTRACK_API="$api" FASTTRACK_APP_PORT="$page_port" FASTTRACK_LAUNCH="$carol_launch" \
    FASTTRACK_TOKEN="$(token_for "$carol")" FASTTRACK_EXPIRED_TOKEN="$(token_for "$carol" --expired)" \
    CHROMIUM="$CHROMIUM" node "$CLIENT/dist/test/app.js"
if [ "$update" = 1 ]; then
    log "client: regenerated, type-checked, end to end, in a browser, and the reference app"
else
    log "client: generated client unchanged, type-checked, end to end, in a browser, and the reference app"
fi
