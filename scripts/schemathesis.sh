#!/usr/bin/env bash
# Schemathesis against the local server and the document it serves at
# /openapi.json (openapi.yaml, with the save operation made exact per tool:
# cli/src/openapi.rs): every check, in every
# phase (examples, coverage, fuzzing, stateful), positive and negative data,
# once each as a user, a guru, an admin and with no token. A fixed seed and a
# bounded example count keep it reproducible and within a few minutes.
#
#   scripts/schemathesis.sh      # honours DATABASE_URL, like make test
#
# Settings: SCHEMATHESIS_SEED (default 20261124), SCHEMATHESIS_MAX_EXAMPLES
# (per operation and phase, default 25). The server runs as a login role of
# fasttrack_runtime (migration 0004), so the run also proves no route needs DDL
# (scripts/local-server.sh).
#
# Generation is not restricted: the spec says exactly what the service accepts,
# U+0000 included (no string schema, object key or free-form JSON value admits
# it: cli/src/openapi.rs tests that), so every generated string is fair.
# Reports (JUnit XML, the server's log) land in $SCHEMATHESIS_REPORT_DIR
# (default: a temporary directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
source scripts/tools.sh
source scripts/local-env.sh

SEED="${SCHEMATHESIS_SEED:-20261124}"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
DB_NAME="${FASTTRACK_SCHEMATHESIS_DB:-fasttrack_schemathesis}"
REPORT_DIR="${SCHEMATHESIS_REPORT_DIR:-$(mktemp -d -t fasttrack-schemathesis.XXXXXX)}"
mkdir -p "$REPORT_DIR"

tools_up
db_up
source scripts/local-server.sh
cleanup() {
    local_server_down
    db_down_if_started
}
trap cleanup EXIT

# A save budget that a whole run does not spend, so that saves keep reaching
# the database (429 is documented, and a test of its own checks the budget).
local_server_up "$DB_NAME" "$REPORT_DIR/server.log" SAVE_BURST=100000
owner_url="$LOCAL_SERVER_DB_URL"

# One assignment each: a failing $(...) inside `declare -A (...)` would not stop
# the script, and a pass would run without its token.
declare -A tokens=([none]="")
tokens[user]=$(token_for alice@demo.fasttrack.test)
tokens[guru]=$(token_for guru@demo.fasttrack.test)
tokens[admin]=$(token_for admin@demo.fasttrack.test)
# The erasure pass calls `POST /me/erasure` alone, as Bob, whose account is
# opened again before each pass.
tokens[erasure]=$(token_for bob@demo.fasttrack.test)

summary=()
failed=0
for pass in user guru admin none erasure; do
    config="$REPORT_DIR/$pass.toml"
    # Credentials the schema's security schemes name; the webhook's shared
    # secret in every pass, so its route is exercised past the signature check.
    {
        # Its defaults, plus "signature": the webhook's header carries the secret.
        echo '[output.sanitization]'
        echo 'sensitive-markers = ["token", "key", "secret", "password", "auth", "session", "passwd", "credential", "signature"]'
        echo '[auth.openapi.learnworldsSignature]'
        echo "api_key = \"v1=$LEARNWORLDS_WEBHOOK_SECRET\""
        # Each exception below is one check, on the operations named, with
        # Schemathesis' defaults for positive_data_acceptance (2xx, 3xx, 401,
        # 403, 404, 409, 429, 5xx) otherwise; every other operation and check
        # keeps its defaults.
        #
        # A 412 is If-Match evaluated against the stored version (RFC 9110,
        # 13.1.1: the condition is false, so the method is not applied), a 428
        # an update sent without one (RFC 6585, section 3: the origin requires
        # the request to be conditional): valid data meeting a precondition on
        # what is stored, which no schema can rule out.
        echo '[[operations]]'
        echo 'include-method = "PUT"'
        echo 'include-path-regex = "^/tools/[^/]+/submission$"'
        echo 'checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "428", "429", "5xx"]'
        # A change of a person is an update: If-Match (412, 428) as for saves;
        # a key sent again with another body (409), the guards on roles (409)
        # and an organization that does not exist (422) meet what is stored.
        echo '[[operations]]'
        echo 'include-method = "PATCH"'
        echo 'include-path-regex = "^/users/[^/]+$"'
        echo 'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "412", "422", "428"]'
        # An unlock of a tool that is not locked, a reopen of one that is not
        # submitted: 409 whatever the body.
        echo '[[operations]]'
        echo 'include-method = "POST"'
        echo 'include-path-regex = "^/users/[^/]+/tools/[^/]+/(unlock|reopen)$"'
        echo 'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409"]'
        # A keyset list's `cursor` is opaque: only a `next_cursor` the service
        # issued is one, and no schema can say which strings it issued, so a
        # well-formed string it never issued is a 400 (RFC 9110, 15.5.1: a
        # client error the server perceives, here a cursor it did not give).
        # So are a roster's `tool` that names no registry tool and a `tool`
        # without `status`. Narrower than the defaults otherwise: no 3xx, 409,
        # 429 or 5xx.
        echo '[[operations]]'
        echo 'include-method = "GET"'
        echo 'include-path-regex = "^/(audit|users|organizations|organizations/[^/]+/members|me/activity)$"'
        echo 'checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "406"]'
        # Not an exception but a narrowing: a second erasure request of one
        # person, or one of an admin, is a 409 whatever the body (RFC 9110,
        # 15.5.10: a conflict with the target resource's current state), and
        # nothing else but success, auth and 404 is valid.
        echo '[[operations]]'
        echo 'include-method = "POST"'
        echo 'include-path-regex = "^/(me|users/[^/]+)/erasure$"'
        echo 'checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409"]'
        # `POST /me/erasure` closes the caller's account, and every later
        # request of the pass would be a 401: it has a pass of its own.
        if [ "$pass" != none ] && [ "$pass" != erasure ]; then
            echo '[[operations]]'
            echo 'include-method = "POST"'
            echo 'include-path = "/me/erasure"'
            echo 'enabled = false'
        fi
        if [ -n "${tokens[$pass]}" ]; then
            echo '[auth.openapi.bearerAuth]'
            echo "bearer = \"${tokens[$pass]}\""
        fi
    } >"$config"
    psql -X -q -v ON_ERROR_STOP=1 "$owner_url" >/dev/null \
        -c "update shared.erasure_requests set status = 'cancelled', cancelled_at = now() where status = 'pending'" \
        -c "update shared.users set erasure_requested_at = null"
    log "schemathesis: pass '$pass' (seed $SEED, at most $MAX_EXAMPLES examples per operation)"
    status=0
    only=()
    if [ "$pass" = erasure ]; then only=(--include-method POST --include-path /me/erasure); fi
    schemathesis --config-file "$config" run "$LOCAL_SERVER_URL/openapi.json" \
        "${only[@]}" \
        --url "$LOCAL_SERVER_URL" \
        --checks all \
        --phases examples,coverage,fuzzing,stateful \
        --mode all \
        --seed "$SEED" \
        --max-examples "$MAX_EXAMPLES" \
        --generation-database none \
        --workers 1 \
        --request-timeout 10 \
        --no-color \
        --report junit \
        --report-junit-path "$REPORT_DIR/$pass.xml" \
        >"$REPORT_DIR/$pass.txt" 2>&1 || status=$?
    # What Schemathesis said, without its progress lines.
    sed -n '/^=* *\(SUMMARY\|FAILURES\|ERRORS\|WARNINGS\)/,$p' "$REPORT_DIR/$pass.txt"
    closed=$(psql -X -tA "$owner_url" -c "select coalesce(string_agg(email, ' '), 'nobody') from shared.users where erasure_requested_at is not null")
    log "schemathesis: accounts the '$pass' pass closed with an erasure request: $closed"
    # "Test cases:" is followed by "N generated, N found N unique failures, N skipped".
    counts=$(grep -A1 '^Test cases:' "$REPORT_DIR/$pass.txt" | tail -n 1 || true)
    cases=$(echo "$counts" | grep -oE '[0-9]+ generated' | grep -oE '[0-9]+' || true)
    found=$(echo "$counts" | grep -oE '[0-9]+ unique failures?' | grep -oE '[0-9]+' || true)
    errors=$( (grep -oE '[0-9]+ errors?' "$REPORT_DIR/$pass.txt" || true) | tail -n 1 | grep -oE '[0-9]+' || true)
    found=$(( ${found:-0} + ${errors:-0} ))
    if [ "$status" -ne 0 ] && [ "$found" -eq 0 ]; then found=1; fi
    summary+=("$(printf '%-6s %6s cases  %3s failures and errors  (exit %s)' "$pass" "${cases:-?}" "$found" "$status")")
    if [ "$status" -ne 0 ]; then failed=1; fi
done

log "schemathesis summary (seed $SEED, reports and the server log in $REPORT_DIR)"
printf '    %s\n' "${summary[@]}" >&2
if [ "$failed" -ne 0 ]; then
    log "schemathesis: failures found"
    exit 1
fi
log "schemathesis: 5 passes, 0 failures"
