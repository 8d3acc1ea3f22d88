//! The scheduled unlock recompute: a set-based pass over all users, in batches,
//! that gives users the progress rows of tools added to the registry and unlocks
//! every locked tool whose required fields are available. It never re-locks or
//! un-completes anything, and a second run changes nothing.
//!
//! A run holds a transaction-scoped advisory lock in a transaction kept open on
//! its own connection (with its own idle limit, `GUARD_IDLE_TIMEOUT`), so a
//! concurrent run skips instead of waiting, and it stays correct behind a
//! transaction-mode pooler (which keeps one server for an open transaction).
//! Each batch commits on its own, on a second connection, so the rows it
//! changes are locked for a moment, not for the whole run. In the steady state
//! (every row present, every unlock done by the submits) a batch is two cheap
//! reads, its user ids and a survey; the costly unlock statement runs for a
//! batch with a missing row or a candidate (a locked tool whose producers are
//! all completed: one whose producer lacks a required output stays a candidate,
//! and locked, until the output appears). The run ends by deleting expired
//! idempotency keys and session launches in its own transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Connection, Postgres};
use uuid::Uuid;

use super::sql;
use crate::foundation::config::{ConfigError, Source, bounded};
use crate::foundation::db;
use crate::registry::Registry;

const RECOMPUTE_LOCK: i64 = 0x6661_7374_7472_6b02; // "fasttrk" + 2

pub const DEFAULT_BATCH_SIZE: i64 = 5000;

/// How long the run's transaction may stay idle, whatever the role's setting.
const GUARD_IDLE_TIMEOUT: &str = "15min";

/// The connections a run uses: one holds the run's lock, one runs the batches.
pub const CONNECTIONS: usize = 2;

/// A batch's transaction, in one round trip (the simple protocol). Its
/// statements are costly enough for PostgreSQL to JIT-compile each one
/// (`jit_above_cost`), and none runs long enough to pay the compilation back:
/// over a copy of the 100k-user database with a quarter of the unlocks undone,
/// a pass took 7.4 and 6.0 s with the JIT, 6.2 and 5.1 s without, with the
/// same tools unlocked; a steady batch of 5,000 users, 80 against 72 ms.
const BEGIN_BATCH: &str = "begin; set local jit = off";

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Another run held the lock; nothing was done.
    pub skipped: bool,
    pub users: u64,
    /// Progress rows created for tools the users did not have yet.
    pub rows_created: u64,
    /// Tools unlocked, by slug.
    pub unlocked: BTreeMap<String, u64>,
    /// Idempotency keys (of saves and of staff changes), session launches and
    /// idle save budgets past their lifetime, deleted.
    pub expired_deleted: u64,
    /// Webhook payloads emptied, past their retention.
    pub webhook_payloads_expired: u64,
    /// Audit log rows deleted, past their retention.
    pub audit_rows_expired: u64,
    /// The funnel's count rows after they were counted again (migration 0019).
    pub funnel_counts: u64,
}

impl Report {
    pub fn changed_anything(&self) -> bool {
        self.rows_created > 0 || !self.unlocked.is_empty()
    }
}

/// What the run's housekeeping keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Housekeeping {
    /// Days a webhook delivery keeps its payload (personal data).
    pub webhook_payload_days: i32,
    /// Days the audit log keeps a row (at least 30, whatever is asked).
    pub audit_days: i32,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Self {
            webhook_payload_days: 30,
            audit_days: 730,
        }
    }
}

impl Housekeeping {
    /// From `WEBHOOK_PAYLOAD_RETENTION_DAYS` (1 to 3650; 30 by default) and
    /// `AUDIT_RETENTION_DAYS` (30 to 3650; 730 by default).
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            webhook_payload_days: bounded(
                source,
                "WEBHOOK_PAYLOAD_RETENTION_DAYS",
                Self::default().webhook_payload_days,
                1..=3650,
            )?,
            audit_days: bounded(
                source,
                "AUDIT_RETENTION_DAYS",
                Self::default().audit_days,
                30..=3650,
            )?,
        })
    }
}

/// A pass with the default housekeeping (tests and tools).
pub async fn run(
    pool: &db::Pool,
    registry: &Registry,
    batch_size: i64,
) -> Result<Report, sqlx::Error> {
    run_with(pool, registry, batch_size, Housekeeping::default()).await
}

pub async fn run_with(
    pool: &db::Pool,
    registry: &Registry,
    batch_size: i64,
    housekeeping: Housekeeping,
) -> Result<Report, sqlx::Error> {
    if pool.max_size() < CONNECTIONS {
        return Err(sqlx::Error::Configuration(
            format!(
                "the recompute needs a pool of at least {CONNECTIONS} connections (one holds the run's lock)"
            )
            .into(),
        ));
    }
    let mut guard_conn = pool.acquire().await?;
    let mut guard = guard_conn.begin().await?;
    // The run's transaction is idle while the batches run: an
    // `idle_in_transaction_session_timeout` set on the role or database (a
    // common guard behind a pooler) would end it mid-run. It gets its own,
    // longer than any run (Lambda stops a function within 15 minutes), so a
    // run whose client vanished still frees the lock.
    let (acquired, _): (bool, String) = db::query_as(
        "select pg_try_advisory_xact_lock($1),
                set_config('idle_in_transaction_session_timeout', $2, true)",
    )
    .bind(RECOMPUTE_LOCK)
    .bind(GUARD_IDLE_TIMEOUT)
    .fetch_one(&mut *guard)
    .await?;
    if !acquired {
        tracing::info!("recompute skipped: another run holds the lock");
        return Ok(Report {
            skipped: true,
            ..Report::default()
        });
    }

    let slugs: Vec<&str> = registry.tools().iter().map(|t| t.slug.as_str()).collect();
    let masks = Masks::new(registry);
    // Built on the first batch that needs it: in the steady state none does.
    let mut unlock_sql = None;

    let mut report = Report::default();
    let mut after = Uuid::nil();
    loop {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin_with(BEGIN_BATCH).await?;
        let users: Vec<Uuid> =
            db::query_scalar("select id from shared.users where id > $1 order by id limit $2")
                .bind(after)
                .bind(batch_size)
                .fetch_all(&mut *tx)
                .await?;
        let Some(&last) = users.last() else {
            tx.commit().await?;
            conn.release();
            break;
        };
        let first_excluded = after;
        after = last;
        report.users += users.len() as u64;

        // Users normally have every registry tool's row from their first sync
        // and every unlock from their submits, so one cheap statement finds
        // whether this batch needs anything: counting rows costs several times
        // less than probing 31 rows per user for a conflict, and the unlock
        // statement is costly to plan (a branch per producer schema).
        let (in_range, present, candidates): (i64, i64, i64) = masks
            .bind_candidates(
                // Unnamed, for a plan that sees this batch's bounds.
                db::query_as(sql::SURVEY).persistent(false),
                first_excluded,
                last,
                &slugs,
            )
            .fetch_one(&mut *tx)
            .await?;

        // New rows start locked; the unlock below opens those whose needs are
        // met (including tools with no required dependencies). The users are
        // read again, key-share locked: one an operator deleted since the batch
        // read its ids is skipped, not a foreign-key error that ends the run.
        let missing = present < in_range * slugs.len() as i64;
        if missing {
            report.rows_created += db::query(
                "insert into shared.user_progress (user_id, tool_slug, status)
                 select u.id, t, 'locked'
                 from (select id from shared.users where id = any($1::uuid[]) for key share) as u
                 cross join unnest($2::text[]) as t
                 where not exists (select 1 from shared.user_progress p where p.user_id = u.id and p.tool_slug = t)
                 on conflict (user_id, tool_slug) do nothing",
            )
            .bind(&users)
            .bind(&slugs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if missing || candidates > 0 {
            let unlocked: Vec<(Uuid, String)> = masks
                .bind_candidates(
                    db::query_as(
                        unlock_sql
                            .get_or_insert_with(|| sql::recompute_unlocks(registry))
                            .clone(),
                    )
                    .persistent(false),
                    first_excluded,
                    last,
                    &slugs,
                )
                .bind(&masks.fields)
                .bind(&masks.field_bits)
                .bind(&masks.no_fields)
                .fetch_all(&mut *tx)
                .await?;
            for (_, slug) in unlocked {
                *report.unlocked.entry(slug).or_default() += 1;
            }
        }
        tx.commit().await?;
        conn.release();
        if (users.len() as i64) < batch_size {
            break;
        }
    }

    // In the run's own transaction, as one statement: one round trip once
    // its plan is cached. A used launch is kept a day, twice the longest
    // launch age (`config::LAUNCH_MAX_AGE_LIMIT`). A save budget untouched
    // for an hour is full again, as a missing one is. Webhook payloads and
    // audit rows past their retention go through migrations 0011's and
    // 0016's functions, the only ways the runtime role may touch those logs;
    // the funnel's counts are counted again, exactly, through 0019's.
    let (expired, emptied, audit_expired, funnel_counts): (i64, i64, i64, i64) = db::query_as(
        "with keys as (
             delete from shared.idempotency_keys
             where created_at < statement_timestamp() - interval '24 hours' returning 1
         ), staff_keys as (
             delete from shared.staff_idempotency_keys
             where created_at < statement_timestamp() - interval '24 hours' returning 1
         ), launches as (
             delete from shared.session_launches
             where used_at < statement_timestamp() - interval '1 day' returning 1
         ), budgets as (
             delete from shared.save_budgets
             where refilled_at < statement_timestamp() - interval '1 hour' returning 1
         )
         select (select count(*) from keys) + (select count(*) from staff_keys)
                  + (select count(*) from launches)
                  + (select count(*) from budgets),
                shared.expire_webhook_payloads($1),
                shared.expire_audit_log($2),
                shared.recount_funnel()",
    )
    .bind(housekeeping.webhook_payload_days)
    .bind(housekeeping.audit_days)
    .fetch_one(&mut *guard)
    .await?;
    report.expired_deleted = expired as u64;
    report.webhook_payloads_expired = emptied as u64;
    report.audit_rows_expired = audit_expired as u64;
    report.funnel_counts = funnel_counts as u64;
    guard.commit().await?;
    guard_conn.release();

    tracing::info!(
        users = report.users,
        rows_created = report.rows_created,
        unlocked = ?report.unlocked,
        expired_deleted = report.expired_deleted,
        webhook_payloads_expired = report.webhook_payloads_expired,
        audit_rows_expired = report.audit_rows_expired,
        funnel_counts = report.funnel_counts,
        "recompute finished"
    );
    Ok(report)
}

/// The bit strings of [`sql::SURVEY`] and
/// [`sql::recompute_unlocks`]: one bit per required field and one per
/// registry tool; for each tool (in registry order) the bits of the fields it
/// requires and of the tools that produce them.
struct Masks {
    fields: Vec<String>,
    field_bits: Vec<String>,
    needs: Vec<String>,
    tool_bits: Vec<String>,
    producers: Vec<String>,
    no_fields: String,
    no_tools: String,
}

fn bits(len: usize, set: impl Fn(usize) -> bool) -> String {
    (0..len).map(|i| if set(i) { '1' } else { '0' }).collect()
}

impl Masks {
    /// Binds what the survey and the unlock share: the candidates' `$1` to `$7`.
    fn bind_candidates<'q, O>(
        &'q self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
        first_excluded: Uuid,
        last: Uuid,
        slugs: &'q [&str],
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query
            .bind(first_excluded)
            .bind(last)
            .bind(slugs)
            .bind(&self.needs)
            .bind(&self.tool_bits)
            .bind(&self.producers)
            .bind(&self.no_tools)
    }

    fn new(registry: &Registry) -> Self {
        let tools = registry.tools();
        let fields: Vec<String> = tools
            .iter()
            .flat_map(|t| t.required_dependencies().map(|d| d.field.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (f, t) = (fields.len(), tools.len());
        let mut needs = Vec::new();
        let mut producers = Vec::new();
        for tool in tools {
            let required: BTreeSet<&str> = tool
                .required_dependencies()
                .map(|d| d.field.as_str())
                .collect();
            needs.push(bits(f, |j| required.contains(fields[j].as_str())));
            let producing: BTreeSet<&str> = required
                .iter()
                .filter_map(|field| registry.producer(field))
                .map(|p| p.slug.as_str())
                .collect();
            producers.push(bits(t, |j| producing.contains(tools[j].slug.as_str())));
        }
        Self {
            field_bits: (0..f).map(|i| bits(f, |j| i == j)).collect(),
            tool_bits: (0..t).map(|i| bits(t, |j| i == j)).collect(),
            fields,
            needs,
            producers,
            no_fields: bits(f, |_| false),
            no_tools: bits(t, |_| false),
        }
    }
}
