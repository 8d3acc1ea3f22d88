#!/usr/bin/env bash
# The local server on a fresh database with the demo data, for the checks that
# talk to it over HTTP (scripts/schemathesis.sh, scripts/client.sh). The server
# logs in as a login role of fasttrack_runtime (migration 0004), as deployed,
# so those checks also prove no route needs DDL.
#
#   source scripts/db.sh; source scripts/local-env.sh; source scripts/local-server.sh
#   db_up
#   trap local_server_down EXIT
#   local_server_up fasttrack_mycheck /path/to/server.log [NAME=value ...]
#   curl "$LOCAL_SERVER_URL/health"; token_for alice@demo.fasttrack.test
#
# local_server_up sets LOCAL_SERVER_URL, LOCAL_SERVER_PID, LOCAL_SERVER_DB_URL
# (the database's owner) and LOCAL_SERVER_RUNTIME_URL; the NAME=value pairs are
# the server's extra environment. local_server_down stops the server and drops
# the database.

LOCAL_SERVER_RUNTIME_LOGIN=fasttrack_test_runtime
LOCAL_SERVER_RUNTIME_PASSWORD=runtime-test-password-not-deployed
LOCAL_SERVER_PID=""
LOCAL_SERVER_DB=""

fasttrack() { "${CARGO_TARGET_DIR:-target}/debug/fasttrack" "$@"; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

local_server_up() {
    local db="$1" server_log="$2"
    shift 2
    LOCAL_SERVER_DB="$db"
    LOCAL_SERVER_DB_URL=$(url_with_database "$db")
    local maintenance_url
    maintenance_url=$(url_with_database postgres)
    log "a fresh database $db with the demo data"
    PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$maintenance_url" \
        -c "drop database if exists $db with (force)" -c "create database $db" >/dev/null
    cargo build -q --locked -p fasttrack-cli
    DATABASE_URL="$LOCAL_SERVER_DB_URL" fasttrack migrate >/dev/null
    DATABASE_URL="$LOCAL_SERVER_DB_URL" fasttrack demo >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 "$LOCAL_SERVER_DB_URL" >/dev/null <<SQL
DO \$\$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$LOCAL_SERVER_RUNTIME_LOGIN') THEN
        CREATE ROLE $LOCAL_SERVER_RUNTIME_LOGIN LOGIN PASSWORD '$LOCAL_SERVER_RUNTIME_PASSWORD' IN ROLE fasttrack_runtime;
    END IF;
END \$\$;
SQL
    local host_port="${LOCAL_SERVER_DB_URL#*://}"
    host_port="${host_port#*@}"
    LOCAL_SERVER_RUNTIME_URL="postgres://$LOCAL_SERVER_RUNTIME_LOGIN:$LOCAL_SERVER_RUNTIME_PASSWORD@$host_port"

    local port
    port=$(free_port)
    LOCAL_SERVER_URL="http://127.0.0.1:$port"
    log "the local server on $LOCAL_SERVER_URL (as $LOCAL_SERVER_RUNTIME_LOGIN)"
    env DATABASE_URL="$LOCAL_SERVER_RUNTIME_URL" PORT="$port" RUST_LOG="${RUST_LOG:-info}" "$@" \
        "${CARGO_TARGET_DIR:-target}/debug/fasttrack" serve >"$server_log" 2>&1 &
    LOCAL_SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fsS "$LOCAL_SERVER_URL/health" >/dev/null 2>&1 && return 0
        kill -0 "$LOCAL_SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    cat "$server_log" >&2
    log "the server did not start"
    return 1
}

local_server_down() {
    if [ -n "$LOCAL_SERVER_PID" ]; then
        kill "$LOCAL_SERVER_PID" 2>/dev/null || true
        wait "$LOCAL_SERVER_PID" 2>/dev/null || true
        LOCAL_SERVER_PID=""
    fi
    if [ -n "$LOCAL_SERVER_DB" ]; then
        psql -X -q "$(url_with_database postgres)" -c "drop database if exists $LOCAL_SERVER_DB with (force)" >/dev/null 2>&1 || true
    fi
}

# A bearer token for a user of the server's database (`--expired`: one that
# expired an hour ago, for a client's refresh).
token_for() { DATABASE_URL="$LOCAL_SERVER_RUNTIME_URL" fasttrack token --email "$@"; }
