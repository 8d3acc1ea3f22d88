//! Data rights: the fullest participant's export of their own record, beside pgbench running
//! its one statement (its own transaction, one snapshot); and the erasure
//! of fully active participants, its statements counted with
//! pg_stat_statements and timed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use sqlx::PgPool;
use uuid::Uuid;

use super::options::Options;
use crate::database;
use crate::load::{
    Bind, Statement, find_pgbench, percentiles_ms, pgbench_statement, run_pgbench_timed,
};
use crate::report::{Budget, Row, median, step};
use shared::Registry;
use shared::foundation::config::{DatabaseSettings, Secret};
use shared::foundation::db;
use shared::identity::tombstones::ErasureKeys;
use shared::rights::{eraser, export};

/// Exports timed per measurement: enough for a p99 (the two slowest).
const EXPORTS: usize = 200;
/// People erased.
const ERASURES: usize = 5;

pub async fn rights(
    options: &Options,
    large_url: &str,
    rights_url: &str,
    work: &Path,
) -> Result<Vec<Row>> {
    let mut rows = export_rows(options, large_url, work).await?;
    rows.extend(erasure_rows(rights_url).await?);
    Ok(rows)
}

/// The participant with the most submitted tools.
async fn fullest(pool: &PgPool, k: usize) -> Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = db::query_scalar(
        "select user_id from shared.user_progress where status = 'completed'
         group by user_id order by count(*) desc, user_id limit $1",
    )
    .bind(k as i64)
    .fetch_all(pool)
    .await?;
    ensure!(!ids.is_empty(), "the generated database has no submissions");
    Ok(ids)
}

async fn export_rows(options: &Options, url: &str, work: &Path) -> Result<Vec<Row>> {
    step("data rights: an export beside pgbench running its statement");
    let pool = database::connect(url, 1).await?;
    let target = fullest(&pool, 1).await?[0];
    let submitted: i64 = db::query_scalar(
        "select count(*) from shared.user_progress where user_id = $1 and status = 'completed'",
    )
    .bind(target)
    .fetch_one(&pool)
    .await?;
    let registry = Registry::embedded();
    let mut conn = pool.acquire().await?;
    let mut times = Vec::with_capacity(EXPORTS);
    let mut bytes = 0;
    for _ in 0..EXPORTS + 1 {
        let started = Instant::now();
        let mut out = Vec::new();
        export::write(&mut conn, registry, own(target), target, &mut out)
            .await
            .map_err(|e| anyhow::anyhow!("export failed: {e:?}"))?
            .map_err(|e| anyhow::anyhow!("export refused: {e:?}"))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = out.len();
    }
    drop(conn);
    times.remove(0); // the first prepares the statement
    let round_trips = export_round_trips(&pool, url, registry, target).await?;
    let (ours, our_p99) = percentiles_ms(times.iter().map(|ms| ms * 1000.0).collect())
        .context("no export was timed")?;

    let slugs: Vec<&str> = registry.tools().iter().map(|t| t.slug.as_str()).collect();
    let statement = Statement {
        sql: export::statement(registry, own(target), target)
            .as_str()
            .to_owned(),
        binds: vec![
            (Bind::Value(target.to_string()), "uuid"),
            (Bind::Value(target.to_string()), "uuid"),
            (Bind::Value(format!("{{{}}}", slugs.join(","))), "text[]"),
            (Bind::Value(String::new()), "text"),
        ],
    };
    let (text, variables) = pgbench_statement(&statement, "export");
    let script = work.join("export.sql");
    std::fs::write(&script, format!("{text};\n"))?;
    let mut args = Vec::new();
    for (name, value) in variables {
        args.push("-D".to_owned());
        args.push(format!("{name}={value}"));
    }
    args.push("-f".into());
    args.push(script.display().to_string());
    let pgbench = find_pgbench(options.pgbench.as_deref())?;
    let theirs = run_pgbench_timed(
        &pgbench,
        url,
        &[args],
        1,
        options.seconds.max(2),
        &work.join("export-pgbench-log"),
    )?;
    pool.close().await;
    Ok(vec![
        Row::info(
            format!(
                "export of a participant with {submitted} tools submitted ({} KiB), p50, c=1",
                bytes / 1024
            ),
            ours,
            "ms",
        )
        .against("pgbench: the same statement, p50", theirs.p50_ms)
        .budget(Budget::RatioAtMost(2.0)),
        Row::info("export: p99, c=1", our_p99, "ms")
            .against("pgbench: the same statement, p99", theirs.p99_ms)
            .budget(Budget::RatioAtMost(2.0)),
        // The one statement, its own transaction and snapshot.
        Row::info(
            "export: round trips (one statement for all schemas)",
            round_trips,
            "",
        ),
    ])
}

/// Statements per export, counted with pg_stat_statements.
async fn export_round_trips(
    pool: &PgPool,
    url: &str,
    registry: &Registry,
    target: Uuid,
) -> Result<f64> {
    db::query("create extension if not exists pg_stat_statements")
        .execute(pool)
        .await
        .context("pg_stat_statements is needed to count round trips (shared_preload_libraries)")?;
    let settings = DatabaseSettings::from_source(&HashMap::from([("DATABASE_URL", url)]))?;
    let service = db::Pool::new(&settings)?;
    db::query("select pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    const K: usize = 10;
    for _ in 0..K {
        service
            .one_statement(async |conn| {
                export::write(conn, registry, own(target), target, &mut Vec::new())
                    .await
                    .map(|_| ())
            })
            .await
            .map_err(|e| anyhow::anyhow!("export failed: {e:?}"))?;
    }
    let calls: i64 = db::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements
         where dbid = (select oid from pg_database where datname = current_database())
           and query not ilike '%pg_stat_statements%'",
    )
    .fetch_one(pool)
    .await?;
    service.close().await;
    Ok(calls as f64 / K as f64)
}

/// The participant's own export: the common case, and a read-only one.
fn own(target: Uuid) -> export::Exporter<'static> {
    export::Exporter::Caller {
        id: target,
        request_id: "",
    }
}

async fn erasure_rows(url: &str) -> Result<Vec<Row>> {
    step("data rights: erasing fully active participants");
    let owner = database::connect(url, 2).await?;
    db::query("create extension if not exists pg_stat_statements")
        .execute(&owner)
        .await
        .context("pg_stat_statements is needed to count statements (shared_preload_libraries)")?;
    let people = fullest(&owner, ERASURES).await?;
    let mut requests = Vec::new();
    for person in &people {
        requests.push(fully_active(&owner, *person).await?);
    }
    let settings = DatabaseSettings::from_source(&HashMap::from([("DATABASE_URL", url)]))?;
    let pool = db::Pool::new(&settings)?;
    let keys = ErasureKeys::new(Secret::new("bench-erasure-hash-key-of-32-bytes-or-more"));

    db::query("select pg_stat_statements_reset()")
        .execute(&owner)
        .await?;
    let mut times = Vec::new();
    for request in &requests {
        let started = Instant::now();
        ensure!(
            eraser::erase(&pool, &keys, *request).await?,
            "a due request was not erased"
        );
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let statements: i64 = db::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements
         where dbid = (select oid from pg_database where datname = current_database())
           and query not ilike '%pg_stat_statements%'",
    )
    .fetch_one(&owner)
    .await?;
    let left: i64 = db::query_scalar("select count(*) from shared.users where id = any($1)")
        .bind(&people)
        .fetch_one(&owner)
        .await?;
    ensure!(left == 0, "{left} erased people are still there");
    pool.close().await;
    owner.close().await;
    Ok(vec![
        Row::info(
            "erasure: statements per person (31 tools, comments, overrides, webhooks, audit rows)",
            statements as f64 / requests.len() as f64,
            "",
        )
        .budget(Budget::ValueAtMost(4.0)),
        Row::info(
            "erasure: time per person (median)",
            median(times.clone()),
            "ms",
        ),
        Row::info(
            format!("erasure: the slowest of {} people", times.len()),
            times.iter().copied().fold(0.0, f64::max),
            "ms",
        ),
    ])
}

/// Gives `person` what a long stay leaves besides their tools (comments,
/// an override, audit rows, a webhook delivery, a launch) and a due erasure
/// request. Returns the request.
async fn fully_active(pool: &PgPool, person: Uuid) -> Result<Uuid> {
    let request: Uuid = db::query_scalar(
        "with p as (select id, lms_user_id, email, full_name, organization_id from shared.users where id = $1),
        c as (
            insert into shared.comments (user_id, tool_slug, author_role, author_name, body)
            select id, 'woop', 'guru', 'Bench Guru', 'Keep going, ' || full_name from p, generate_series(1, 3)
        ), o as (
            insert into shared.overrides (user_id, tool_slug, kind, actor_role, reason)
            select id, 'dream', 'unlock', 'guru', 'bench' from p
        ), a as (
            insert into shared.audit_log (actor_role, action, subjects, organization_id, reason)
            select 'guru', 'read.progress', array[id], organization_id, 'looked at ' || email from p, generate_series(1, 5)
        ), w as (
            insert into shared.webhook_events (body_sha256, event_type, lms_user_id, outcome, payload)
            select sha256(convert_to(id::text, 'utf8')), 'userUpdated', lms_user_id, 'synced',
                   jsonb_build_object('user', jsonb_build_object('id', lms_user_id, 'email', email, 'username', full_name))
            from p
        ), l as (
            insert into shared.session_launches (signature_sha256, lms_user_id)
            select sha256(convert_to(email, 'utf8')), lms_user_id from p
        ), closed as (
            update shared.users set erasure_requested_at = clock_timestamp() where id = $1
        )
        insert into shared.erasure_requests (subject, requested_by_role, reason, erase_after)
        select id, 'system', 'bench', clock_timestamp() from p
        returning id",
    )
    .bind(person)
    .fetch_one(pool)
    .await?;
    Ok(request)
}
