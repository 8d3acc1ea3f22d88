#!/usr/bin/env bash
# Backup and restore exactly as the README documents them (pg_dump -Fc, then
# pg_restore and the database-level grants), proven on the demo data: restore
# into an empty database, then compare every table and every privilege.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
db_up
cargo build -q --locked -p fasttrack-cli

maintenance_url=$(url_with_database postgres)
source_url=$(url_with_database fasttrack_backup_source)
restored_url=$(url_with_database fasttrack_backup_restored)
dump=$(mktemp)
drop_databases() {
    for db in fasttrack_backup_source fasttrack_backup_restored; do
        psql -X -q "$maintenance_url" -c "drop database if exists $db with (force)" >/dev/null
    done
}
trap 'rm -f "$dump"; drop_databases; db_down_if_started' EXIT
drop_databases
for db in fasttrack_backup_source fasttrack_backup_restored; do
    psql -X -q -v ON_ERROR_STOP=1 "$maintenance_url" -c "create database $db" >/dev/null
done

fasttrack() { "${CARGO_TARGET_DIR:-target}/debug/fasttrack" "$@"; }
DATABASE_URL="$source_url" fasttrack migrate >/dev/null
DATABASE_URL="$source_url" fasttrack demo >/dev/null

# The README's commands (the group role exists already: one cluster).
pg_dump -Fc -f "$dump" "$source_url"
pg_restore --exit-on-error --single-transaction -d "$restored_url" "$dump"
psql -X -q -v ON_ERROR_STOP=1 "$restored_url" >/dev/null <<'SQL'
select format('revoke temporary on database %I from public', current_database()) \gexec
select format('grant connect on database %I to fasttrack_runtime, fasttrack_eraser', current_database()) \gexec
SQL

# A checksum per table, computed the same way in both databases.
checksums() {
    psql -X -tA -v ON_ERROR_STOP=1 "$1" -c "select format('select %L, md5(coalesce(string_agg(t::text, %L order by t::text), %L)) from %I.%I t;',
                                        table_schema || '.' || table_name, '|', '', table_schema, table_name)
                         from information_schema.tables
                         where table_schema = 'shared' or table_schema like 'sprint\_%' or table_name = '_sqlx_migrations'
                         order by 1" \
        | psql -X -tA -v ON_ERROR_STOP=1 "$1"
}
# Who may do what: table and column grants, schema grants, and the database's own.
privileges() {
    psql -X -tA -v ON_ERROR_STOP=1 "$1" -c "
        select 'table ' || table_schema || '.' || table_name || ' ' || grantee || ' ' || privilege_type
          from information_schema.role_table_grants
         where table_schema = 'shared' or table_schema like 'sprint\_%'
        union all
        select 'column ' || table_schema || '.' || table_name || '.' || column_name || ' ' || grantee || ' ' || privilege_type
          from information_schema.column_privileges
         where table_schema = 'shared' or table_schema like 'sprint\_%'
        union all
        select 'schema ' || nspname || ' ' || coalesce(nspacl::text, 'default')
          from pg_namespace where nspname = 'public' or nspname = 'shared' or nspname like 'sprint\_%'
        union all
        select 'database ' || array_to_string(array(select a::text from unnest(datacl) a order by 1), ',')
          from pg_database where datname = current_database()
        order by 1"
}
before=$(checksums "$source_url")
after=$(checksums "$restored_url")
granted_before=$(privileges "$source_url")
granted_after=$(privileges "$restored_url")
tables=$(echo "$before" | wc -l)
# shared (7 tables), two per tool schema, and the migrations table.
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
if [ "$granted_before" != "$granted_after" ]; then
    diff <(echo "$granted_before") <(echo "$granted_after") >&2 || true
    log "backup round trip: the restored database grants other privileges"
    exit 1
fi
grants=$(echo "$granted_after" | wc -l)
# Each command's whole output is read before it is searched: `cmd | grep -q`
# closes the pipe at the first match, and the command's next line then fails
# with a broken pipe (pipefail makes that the pipeline's failure).
migrated=$(DATABASE_URL="$restored_url" fasttrack migrate) || { log "backup round trip: migrate failed on the restore"; exit 1; }
grep -q "up to date" <<<"$migrated" || { echo "$migrated" >&2; log "backup round trip: migrate is not a no-op on the restore"; exit 1; }
log "backup round trip: $tables tables and $grants privileges identical after pg_dump -Fc | pg_restore ($rows sample rows); migrate is a no-op on the restore"

# Erasure and backups (README, "Backups"): the dump predates an erasure, so
# restoring it brings the person back; `fasttrack erasures reapply` erases them
# again from the newer database's tombstones. Then nothing of them is left.
source scripts/local-env.sh
IFS='|' read -r victim lms email name < <(psql -X -tA "$source_url" -c \
    "select id, lms_user_id, email, full_name from shared.users where email = 'alice@demo.fasttrack.test'")
[ -n "$victim" ] || { log "backup round trip: the demo has no alice"; exit 1; }
psql -X -q -v ON_ERROR_STOP=1 "$source_url" >/dev/null <<SQL
insert into shared.erasure_requests (subject, requested_by_role, reason, erase_after)
values ('$victim', 'system', 'backup round trip', clock_timestamp());
update shared.users set erasure_requested_at = clock_timestamp() where id = '$victim';
SQL
erased=$(DATABASE_URL="$source_url" fasttrack erasures run) || { log "backup round trip: the erasure failed"; exit 1; }
grep -q '"erased": 1' <<<"$erased" || { echo "$erased" >&2; log "backup round trip: the erasure did not run"; exit 1; }
# Every row of every table, as text, searched for each of the person's identifiers.
traces() {
    psql -X -tA -v ON_ERROR_STOP=1 "$1" -c "select format('select %L, count(*) from %I.%I t where strpos(lower(t::text), lower(%L)) > 0 or strpos(lower(t::text), lower(%L)) > 0 or strpos(lower(t::text), lower(%L)) > 0 or strpos(lower(t::text), lower(%L)) > 0;',
                                        table_schema || '.' || table_name, table_schema, table_name, '$victim', '$lms', '$email', '$name')
                         from information_schema.tables
                         where (table_schema = 'shared' or table_schema like 'sprint\_%') and table_type = 'BASE TABLE'
                         order by 1" \
        | psql -X -tA -F ' ' -v ON_ERROR_STOP=1 "$1" | awk '$2 > 0'
}
[ -z "$(traces "$source_url")" ] || { traces "$source_url" >&2; log "backup round trip: the erasure left traces"; exit 1; }
before_reapply=$(traces "$restored_url" | wc -l)
[ "$before_reapply" -gt 0 ] || { log "backup round trip: the older dump should still hold the person"; exit 1; }
reapplied=$(DATABASE_URL="$restored_url" fasttrack erasures reapply --tombstones-from "$source_url")
grep -q '"erased": 1' <<<"$reapplied" || { echo "$reapplied" >&2; log "backup round trip: reapply erased nobody"; exit 1; }
left=$(traces "$restored_url")
[ -z "$left" ] || { echo "$left" >&2; log "backup round trip: after reapply the restore still names the person"; exit 1; }
log "backup round trip: an erasure after the dump is re-applied to its restore ($before_reapply tables named the person before, none after)"
