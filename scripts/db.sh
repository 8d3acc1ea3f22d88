#!/usr/bin/env bash
# The local PostgreSQL bootstrap shared by `make run`, `make test` and `make migrate`.
#
#   source scripts/db.sh && db_up      # sets DATABASE_URL (starts a private cluster if needed)
#   scripts/db.sh start | stop | status | url
#
# When DATABASE_URL is already set, that server is used and nothing is started.
# Otherwise a private cluster lives in .pgdata/ inside the repo (ignored by git;
# see PG_HOME for a repo root cloned into its private home),
# listening only on 127.0.0.1 at a fixed high port. PostgreSQL refuses to run as
# root, so when invoked as root the cluster belongs to the `postgres` OS user.

FASTTRACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_PORT="${FASTTRACK_PG_PORT:-54329}"
PG_DB="fasttrack"
# True when every directory down to $1 lets other users pass (o+x).
world_traversable() {
    local dir="$1"
    while [ "$dir" != / ]; do
        [ -n "$(find "$dir" -maxdepth 0 -perm -o=x 2>/dev/null)" ] || return 1
        dir=$(dirname "$dir")
    done
}

# The cluster lives in .pgdata/ in the repo, unless root cloned the repo where
# the `postgres` OS user cannot enter (root's own home is mode 700): then in a
# directory of its own, named after the repo's path.
if [ "$(id -u)" -ne 0 ] || world_traversable "$FASTTRACK_ROOT"; then
    PG_HOME="$FASTTRACK_ROOT/.pgdata"
else
    PG_HOME="/var/lib/fasttrack/pg-$(printf %s "$FASTTRACK_ROOT" | sha256sum | cut -c1-12)"
fi
PG_DATA="$PG_HOME/data"
PG_LOG="$PG_HOME/postgres.log"
PG_STARTED_HERE=0

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else
        log "need root to run: $*"; return 1
    fi
}

# Installs Debian packages, lists refreshed first (a fresh machine has none).
apt_install() {
    log "installing $* with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres_installed() {
    if [ -n "$(pg_bindir)" ] && command -v psql >/dev/null; then return 0; fi
    apt_install postgresql postgresql-contrib
    [ -n "$(pg_bindir)" ] || { log "PostgreSQL installed but initdb not found"; return 1; }
}

# Runs a PostgreSQL server binary as the cluster's owner.
as_pg_owner() {
    # From /, as the owner may not enter the current directory (root's home).
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

local_url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB"; }

# DATABASE_URL naming another database on the same server; its query
# (`?sslmode=verify-full&sslrootcert=...`) is kept.
url_with_database() {
    local base="${DATABASE_URL%%\?*}"
    echo "${base%/*}/$1${DATABASE_URL:${#base}}"
}

cluster_running() {
    [ -f "$PG_DATA/PG_VERSION" ] && as_pg_owner "$(pg_bindir)/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1
}

init_cluster() {
    local bin; bin=$(pg_bindir)
    mkdir -p "$PG_HOME"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$PG_HOME"
        if ! runuser -u postgres -- test -w "$PG_HOME"; then
            log "the postgres OS user cannot reach $PG_HOME."
            log "Set DATABASE_URL to a server of your own, or clone the repo elsewhere."
            return 1
        fi
    fi
    log "creating a private PostgreSQL cluster in $PG_HOME (port $PG_PORT)"
    as_pg_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
    # A disposable development cluster: loopback only, no Unix socket, and no
    # fsync (an OS crash may lose it; a PostgreSQL restart loses nothing).
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# fasttrack development cluster
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
fsync = off
full_page_writes = off
shared_preload_libraries = 'pg_stat_statements'
EOF
}

db_start() {
    ensure_postgres_installed || return 1
    local bin; bin=$(pg_bindir)
    [ -f "$PG_DATA/PG_VERSION" ] || init_cluster || return 1
    if ! cluster_running; then
        if (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; then
            log "port $PG_PORT is taken by another server; stop it, set FASTTRACK_PG_PORT, or set DATABASE_URL"
            return 1
        fi
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        # The port asked for now, not the one the cluster was created with.
        as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -o "-p $PG_PORT" -w -t 60 start >/dev/null || {
            log "PostgreSQL did not start; its log:"; tail -n 20 "$PG_LOG" >&2; return 1; }
        PG_STARTED_HERE=1
    else
        # Already running, perhaps started on another port: use the one it
        # listens on (the fourth line of its postmaster.pid).
        local running
        running=$(as_pg_owner sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null)
        if [ -n "$running" ] && [ "$running" != "$PG_PORT" ]; then
            log "the private cluster is already running on port $running: using it"
            PG_PORT=$running
        fi
    fi
    if ! psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAq \
            -c "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -q -c "create database $PG_DB" >/dev/null
    fi
}

db_stop() {
    local bin; bin=$(pg_bindir)
    if [ -n "$bin" ] && cluster_running; then
        log "stopping the private PostgreSQL cluster"
        as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null
    fi
}

# A fast restart of the private cluster (the fault tests' "PostgreSQL restarted
# mid-load"): every session is cut, and the server is back once this returns.
db_restart() {
    local bin; bin=$(pg_bindir)
    cluster_running || { log "the private cluster is not running"; return 1; }
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -m fast -w -t 60 restart >/dev/null
}

# Sets DATABASE_URL: the caller's own server, or the private cluster.
db_up() {
    if [ -n "${DATABASE_URL:-}" ]; then
        log "using the DATABASE_URL already set; starting no server"
        ensure_postgres_installed || return 1   # psql and the tools the tests call
        return 0
    fi
    db_start || return 1
    DATABASE_URL=$(local_url)
    export DATABASE_URL
}

# Stops the private cluster only if this process started it.
db_down_if_started() {
    if [ "$PG_STARTED_HERE" = 1 ]; then db_stop; fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
        start) db_start; local_url ;;
        stop) db_stop ;;
        restart) db_restart ;;
        status) if cluster_running; then echo "running: $(local_url)"; else echo "stopped"; fi ;;
        url) local_url ;;
        *) echo "usage: $0 start|stop|restart|status|url" >&2; exit 2 ;;
    esac
fi
