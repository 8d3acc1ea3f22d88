#!/usr/bin/env bash
# Backup and restore as the README documents it (pg_dump, then psql), proven on
# the demo data: restore into an empty database and compare every table.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
db_up

server="${DATABASE_URL%/*}"
source_url="$server/fasttrack_backup_source"
restored_url="$server/fasttrack_backup_restored"
dump=$(mktemp)
trap 'rm -f "$dump"' EXIT
for db in fasttrack_backup_source fasttrack_backup_restored; do
    psql -X -q "$server/postgres" -c "drop database if exists $db" -c "create database $db" >/dev/null
done

fasttrack() { "${CARGO_TARGET_DIR:-target}/debug/fasttrack" "$@"; }
DATABASE_URL="$source_url" fasttrack migrate >/dev/null
DATABASE_URL="$source_url" fasttrack demo >/dev/null

# The README's commands.
pg_dump "$source_url" > "$dump"
psql -X -q -v ON_ERROR_STOP=1 "$restored_url" < "$dump" >/dev/null

# A checksum per table, computed the same way in both databases.
checksums() {
    psql -X -tA -v ON_ERROR_STOP=1 "$1" -c "select format('select %L, md5(coalesce(string_agg(t::text, %L order by t::text), %L)) from %I.%I t;',
                                        table_schema || '.' || table_name, '|', '', table_schema, table_name)
                         from information_schema.tables
                         where table_schema = 'shared' or table_schema like 'sprint\_%' or table_name = '_sqlx_migrations'
                         order by 1" \
        | psql -X -tA -v ON_ERROR_STOP=1 "$1"
}
before=$(checksums "$source_url")
after=$(checksums "$restored_url")
tables=$(echo "$before" | wc -l)
# shared (6 tables), two per tool schema, and the migrations table.
if [ "$tables" -lt 60 ]; then
    log "backup round trip: only $tables tables were compared"
    exit 1
fi
rows=$(psql -X -tA "$restored_url" -c "select (select count(*) from shared.users) + (select count(*) from shared.user_progress) + (select count(*) from sprint_00_woop.submissions)")
if [ "$before" != "$after" ]; then
    diff <(echo "$before") <(echo "$after") >&2 || true
    log "backup round trip: the restored database differs"
    exit 1
fi
DATABASE_URL="$restored_url" fasttrack migrate | grep -q "up to date" || { log "backup round trip: migrate is not a no-op on the restore"; exit 1; }
for db in fasttrack_backup_source fasttrack_backup_restored; do
    psql -X -q "$server/postgres" -c "drop database $db" >/dev/null
done
log "backup round trip: $tables tables identical after pg_dump | psql ($rows sample rows); migrate is a no-op on the restore"
