#!/usr/bin/env bash
# A PgBouncer in transaction mode in front of the test database, for the test
# pass that proves the service works behind a transaction pooler.
#
#   source scripts/pgbouncer.sh && pgbouncer_up    # sets PGBOUNCER_URL
#   pgbouncer_down
#
# FASTTRACK_PGBOUNCER_SERVER_IDLE_TIMEOUT (seconds, default PgBouncer's 600):
# the tests set it short, so that PgBouncer lets go of a test's database soon
# after the test, and sqlx's DROP DATABASE at its end does not wait 5 s for
# those sessions and then fail.

# The port: FASTTRACK_PGBOUNCER_PORT, or the first of 54330..54339 it can
# listen on. Those lie in Linux's ephemeral range (32768-60999), so a client
# connection can hold one as its local port for a while: "Address already in
# use" then means the next port, not a failed run.
PGBOUNCER_PORT="${FASTTRACK_PGBOUNCER_PORT:-54330}"
PGBOUNCER_DIR="$PG_HOME/pgbouncer"   # PG_HOME: scripts/db.sh, sourced first

pgbouncer_up() {
    if ! command -v pgbouncer >/dev/null; then
        apt_install pgbouncer
    fi
    # The upstream server: the one DATABASE_URL names.
    : "${DATABASE_URL:?pgbouncer_up needs DATABASE_URL (scripts/db.sh start prints it)}"
    local upstream="${DATABASE_URL#*://}"; upstream="${upstream#*@}"; upstream="${upstream%%/*}"
    local host="${upstream%%:*}" port="${upstream##*:}"
    [ "$port" = "$upstream" ] && port=5432
    local credentials="${DATABASE_URL#*://}"; credentials="${credentials%%@*}"
    local user="${credentials%%:*}" password=""
    if [ "$credentials" != "$user" ]; then
        password="${credentials#*:}"
        password=$(printf '%b' "${password//%/\\x}")   # percent-decoded
    fi
    mkdir -p "$PGBOUNCER_DIR"
    pgbouncer_down
    # The test database's owner, and the login role the API tests serve as
    # (shared/tests/support/runtime_role.rs), with the passwords PgBouncer
    # gives the server when it asks for one. Readable by its owner only, and
    # removed by pgbouncer_down.
    (umask 077 && printf '"%s" "%s"\n' "$user" "${password//\"/\"\"}" \
        fasttrack_test_runtime runtime-test-password-not-deployed >"$PGBOUNCER_DIR/userlist.txt")
    # A server that asks for a password gets a pooler that asks for it too:
    # otherwise any local user could reach that server through PgBouncer.
    PGBOUNCER_AUTH=trust
    [ -n "$password" ] && PGBOUNCER_AUTH=md5
    local first="$PGBOUNCER_PORT" last="$PGBOUNCER_PORT"
    [ -z "${FASTTRACK_PGBOUNCER_PORT:-}" ] && last=$((first + 9))
    for PGBOUNCER_PORT in $(seq "$first" "$last"); do
        if pgbouncer_start "$host" "$port"; then
            PGBOUNCER_URL="postgres://$credentials@127.0.0.1:$PGBOUNCER_PORT"
            export PGBOUNCER_URL
            log "PgBouncer (transaction mode) on 127.0.0.1:$PGBOUNCER_PORT"
            return 0
        fi
        # Only a port someone else holds is worth another try.
        grep -q "Address already in use" "$PGBOUNCER_DIR/pgbouncer.log" 2>/dev/null || break
        log "port $PGBOUNCER_PORT is in use; trying the next"
    done
    log "PgBouncer did not start:"
    tail -n 20 "$PGBOUNCER_DIR/pgbouncer.log" >&2
    return 1
}

# Starts PgBouncer on $PGBOUNCER_PORT in front of host $1, port $2; fails if
# it is not listening after a few tries (its log says why).
pgbouncer_start() {
    cat >"$PGBOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
* = host=$1 port=$2

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = $PGBOUNCER_AUTH
auth_file = $PGBOUNCER_DIR/userlist.txt
pool_mode = transaction
max_client_conn = 400
default_pool_size = 20
server_idle_timeout = ${FASTTRACK_PGBOUNCER_SERVER_IDLE_TIMEOUT:-600}
logfile = $PGBOUNCER_DIR/pgbouncer.log
pidfile = $PGBOUNCER_DIR/pgbouncer.pid
INI
    rm -f "$PGBOUNCER_DIR/pgbouncer.log"
    if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$PGBOUNCER_DIR"; fi
    local _
    for _ in $(seq 50); do pgbouncer_listening || break; sleep 0.1; done
    if pgbouncer_listening; then
        echo "port $PGBOUNCER_PORT: Address already in use (something answers on it)" >>"$PGBOUNCER_DIR/pgbouncer.log"
        return 1
    fi
    # A daemon that cannot start exits after `-d` has returned 0: it is up once
    # the port answers and the process its pidfile names is alive. A few tries.
    local attempt
    for attempt in 1 2 3; do
        # PgBouncer, like PostgreSQL, refuses to run as root.
        as_pg_owner pgbouncer -d -q "$PGBOUNCER_DIR/pgbouncer.ini" || sleep 0.5
        for _ in $(seq 50); do
            pgbouncer_listening && pgbouncer_alive "$(cat "$PGBOUNCER_DIR/pgbouncer.pid" 2>/dev/null)" && return 0
            sleep 0.1
        done
        grep -q "Address already in use" "$PGBOUNCER_DIR/pgbouncer.log" 2>/dev/null && return 1
    done
    pgbouncer_listening
}

pgbouncer_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PGBOUNCER_PORT") 2>/dev/null
}

# Running, and not a zombie: a container's init may never reap a daemon.
pgbouncer_alive() {
    local state
    [ -n "$1" ] && state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$state" != Z ]
}

pgbouncer_down() {
    local pid _
    rm -f "$PGBOUNCER_DIR/userlist.txt"
    pid=$(cat "$PGBOUNCER_DIR/pgbouncer.pid" 2>/dev/null) || return 0
    # A pid file left by a reboot or a killed job may name another process now.
    if ! tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF "$PGBOUNCER_DIR/pgbouncer.ini"; then
        rm -f "$PGBOUNCER_DIR/pgbouncer.pid"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do pgbouncer_alive "$pid" || break; sleep 0.1; done
    if pgbouncer_alive "$pid"; then
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 20); do pgbouncer_alive "$pid" || break; sleep 0.1; done
    fi
    rm -f "$PGBOUNCER_DIR/pgbouncer.pid"
}
