//! The scheduled unlock recompute: a set-based pass, in batches, that gives
//! users the progress rows of tools added to the registry and unlocks every
//! locked tool whose required fields are available. It never re-locks or
//! un-completes anything, and a second run changes nothing.
//!
//! A run covers the users whose inputs changed since the last one ([`Scope`]):
//! the triggers of migration 0021 mark them in `shared.recompute_dirty`, in
//! the transactions that change them, and each batch deletes the marks it
//! read once it has recomputed their users, unless a mark was renewed
//! meanwhile. A full sweep covers every user, in id ranges; a run does one
//! when asked to, and whenever the registry differs from the one of the last
//! full sweep (its fingerprint is kept in `shared.recompute_state`).
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
//! idempotency keys and session launches in its own transaction, and by
//! compacting the funnel's counts (a full sweep counts them all again).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Connection, Postgres};
use uuid::Uuid;

use super::sql::{self, Batch};
use crate::foundation::config::{ConfigError, Source, bounded};
use crate::foundation::db;
use crate::registry::Registry;
use crate::registry::sql::Sql;

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
///
/// `fasttrack.recompute` tells migration 0021's triggers that the rows this
/// transaction inserts need no mark: it unlocks what they make possible itself.
const BEGIN_BATCH: &str = "begin; set local jit = off; set local fasttrack.recompute = on";

/// Which users a run recomputes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Those marked as changed since the last run; every user when the
    /// registry differs from the last full sweep's. The schedule's.
    #[default]
    Changed,
    /// Every user: a full sweep.
    All,
}

impl Scope {
    /// The scope an invocation's event asks for: `{"full": true}` a full
    /// sweep, anything without `full` (a schedule's own event) the changed
    /// users. A `full` that is not a boolean is refused, so that a mistyped
    /// schedule fails loudly rather than never sweeping.
    pub fn from_event(event: &serde_json::Value) -> Result<Self, String> {
        match event.get("full") {
            None | Some(serde_json::Value::Bool(false)) => Ok(Self::Changed),
            Some(serde_json::Value::Bool(true)) => Ok(Self::All),
            Some(other) => Err(format!(
                "the event's `full` must be true or false, not {other}"
            )),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Another run held the lock; nothing was done.
    pub skipped: bool,
    /// Every user was recomputed (asked for, or the registry changed).
    pub full: bool,
    /// The registry differs from the one of the last full sweep (or there was
    /// none): this run swept every user, and records it.
    pub registry_changed: bool,
    /// Users recomputed.
    pub users: u64,
    /// Marks of changed users taken off (those the run recomputed and nothing
    /// marked again meanwhile).
    pub marks_cleared: u64,
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
    /// The funnel's count rows after they were counted again (migration 0019):
    /// a full sweep's; none otherwise.
    pub funnel_counts: Option<u64>,
    /// The funnel's delta rows summed into their counts (migration 0021).
    pub funnel_deltas_compacted: u64,
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

/// A scheduled run ([`Scope::Changed`]) with the default housekeeping (tests
/// and tools).
pub async fn run(
    pool: &db::Pool,
    registry: &Registry,
    batch_size: i64,
) -> Result<Report, sqlx::Error> {
    run_with(
        pool,
        registry,
        batch_size,
        Housekeeping::default(),
        Scope::Changed,
    )
    .await
}

/// A full sweep ([`Scope::All`]) with the default housekeeping.
pub async fn run_full(
    pool: &db::Pool,
    registry: &Registry,
    batch_size: i64,
) -> Result<Report, sqlx::Error> {
    run_with(
        pool,
        registry,
        batch_size,
        Housekeeping::default(),
        Scope::All,
    )
    .await
}

pub async fn run_with(
    pool: &db::Pool,
    registry: &Registry,
    batch_size: i64,
    housekeeping: Housekeeping,
    scope: Scope,
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
    let (acquired, _, swept_with): (bool, String, Option<String>) = db::query_as(
        "select pg_try_advisory_xact_lock($1),
                set_config('idle_in_transaction_session_timeout', $2, true),
                (select registry_fingerprint from shared.recompute_state)",
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

    let fingerprint = registry_fingerprint(registry);
    let registry_changed = swept_with.as_deref() != Some(fingerprint.as_str());
    let full = scope == Scope::All || registry_changed;
    let mut report = Report {
        full,
        registry_changed,
        ..Report::default()
    };
    let batches = Batches {
        registry,
        slugs: registry.tools().iter().map(|t| t.slug.as_str()).collect(),
        masks: Masks::new(registry),
        unlock_range: OnceLock::new(),
        unlock_listed: OnceLock::new(),
    };
    let kind = if full { Batch::Range } else { Batch::Listed };
    batches
        .each_batch(pool, kind, batch_size, &mut report)
        .await?;

    // In the run's own transaction, as one statement: one round trip once
    // its plan is cached. A used launch is kept a day, twice the longest
    // launch age (`config::LAUNCH_MAX_AGE_LIMIT`). A session (its refresh
    // tokens) goes once past its absolute end, or a day after it was revoked.
    // A save budget untouched
    // for an hour is full again, as a missing one is. Webhook payloads and
    // audit rows past their retention go through migrations 0011's and
    // 0016's functions, the only ways the runtime role may touch those logs;
    // the funnel's counts are counted again, exactly, through 0019's in a
    // full sweep (which then records its registry), and their deltas
    // compacted through 0021's otherwise.
    let (expired, emptied, audit_expired, funnel_counts, compacted): (
        i64,
        i64,
        i64,
        Option<i64>,
        i64,
    ) = db::query_as(
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
         ), sessions as (
             delete from shared.refresh_families
             where expires_at < statement_timestamp()
                or revoked_at < statement_timestamp() - interval '1 day' returning 1
         ), swept as (
             update shared.recompute_state
             set registry_fingerprint = $4, full_sweep_at = statement_timestamp()
             where $3 returning 1
         )
         select (select count(*) from keys) + (select count(*) from staff_keys)
                  + (select count(*) from launches)
                  + (select count(*) from budgets)
                  + (select count(*) from sessions),
                shared.expire_webhook_payloads($1),
                shared.expire_audit_log($2),
                case when $3 then shared.recount_funnel() end,
                case when $3 then 0 else shared.compact_funnel() end
                  + 0 * (select count(*) from swept)",
    )
    .bind(housekeeping.webhook_payload_days)
    .bind(housekeeping.audit_days)
    .bind(full)
    .bind(&fingerprint)
    .fetch_one(&mut *guard)
    .await?;
    report.expired_deleted = expired as u64;
    report.webhook_payloads_expired = emptied as u64;
    report.audit_rows_expired = audit_expired as u64;
    report.funnel_counts = funnel_counts.map(|n| n as u64);
    report.funnel_deltas_compacted = compacted as u64;
    guard.commit().await?;
    guard_conn.release();

    tracing::info!(
        full = report.full,
        registry_changed = report.registry_changed,
        users = report.users,
        marks_cleared = report.marks_cleared,
        rows_created = report.rows_created,
        unlocked = ?report.unlocked,
        expired_deleted = report.expired_deleted,
        webhook_payloads_expired = report.webhook_payloads_expired,
        audit_rows_expired = report.audit_rows_expired,
        funnel_counts = ?report.funnel_counts,
        funnel_deltas_compacted = report.funnel_deltas_compacted,
        "recompute finished"
    );
    Ok(report)
}

/// What the batches of one run share.
struct Batches<'r> {
    registry: &'r Registry,
    slugs: Vec<&'r str>,
    masks: Masks,
    /// Built on the first batch that needs each: in the steady state none does.
    unlock_range: OnceLock<Sql>,
    unlock_listed: OnceLock<Sql>,
}

/// The users of one batch, and the marks read for them.
struct Batched {
    users: Vec<Uuid>,
    /// The batch's users' marks as read, to be taken off once it is done.
    marks: Vec<(Uuid, i64)>,
}

/// A full sweep's next batch: the users after `after` in id order, and the
/// marks of their range, read before the batch's statements so that whatever
/// they stand for has committed and is seen.
async fn in_range_after(
    tx: &mut sqlx::PgConnection,
    after: Uuid,
    batch_size: i64,
) -> Result<Batched, sqlx::Error> {
    let users: Vec<Uuid> =
        db::query_scalar("select id from shared.users where id > $1 order by id limit $2")
            .bind(after)
            .bind(batch_size)
            .fetch_all(&mut *tx)
            .await?;
    let marks = match users.last() {
        Some(&last) => {
            db::query_as(
                "select user_id, mark from shared.recompute_dirty
                 where user_id > $1 and user_id <= $2",
            )
            .bind(after)
            .bind(last)
            .fetch_all(&mut *tx)
            .await?
        }
        None => Vec::new(),
    };
    Ok(Batched { users, marks })
}

/// A run over the changed users' next batch: the marked users after `after`,
/// in id order, with their marks.
async fn marked_after(
    tx: &mut sqlx::PgConnection,
    after: Uuid,
    batch_size: i64,
) -> Result<Batched, sqlx::Error> {
    let marks: Vec<(Uuid, i64)> = db::query_as(
        "select user_id, mark from shared.recompute_dirty
         where user_id > $1 order by user_id limit $2",
    )
    .bind(after)
    .bind(batch_size)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Batched {
        users: marks.iter().map(|(user, _)| *user).collect(),
        marks,
    })
}

impl Batches<'_> {
    /// Every user in id ranges ([`Batch::Range`], a full sweep), or the users
    /// marked as changed in id order ([`Batch::Listed`]): a batch per
    /// transaction, each taking off the marks it read before recomputing.
    async fn each_batch(
        &self,
        pool: &db::Pool,
        kind: Batch,
        batch_size: i64,
        report: &mut Report,
    ) -> Result<(), sqlx::Error> {
        let mut after = Uuid::nil();
        loop {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin_with(BEGIN_BATCH).await?;
            let batched = match kind {
                Batch::Range => in_range_after(&mut tx, after, batch_size).await?,
                Batch::Listed => marked_after(&mut tx, after, batch_size).await?,
            };
            let Some(&last) = batched.users.last() else {
                tx.commit().await?;
                conn.release();
                break;
            };
            self.batch(&mut tx, kind, after, last, &batched, report)
                .await?;
            tx.commit().await?;
            conn.release();
            if (batched.users.len() as i64) < batch_size {
                break;
            }
            after = last;
        }
        Ok(())
    }

    /// One batch, in its transaction: the survey, the missing rows, the
    /// unlocks, then the marks taken off. `first_excluded` and `last` bound a
    /// range's batch; a listed one's users are bound instead of the first.
    async fn batch(
        &self,
        tx: &mut sqlx::PgConnection,
        batch: Batch,
        first_excluded: Uuid,
        last: Uuid,
        batched: &Batched,
        report: &mut Report,
    ) -> Result<(), sqlx::Error> {
        let users = &batched.users;
        report.users += users.len() as u64;

        // Users normally have every registry tool's row from their first sync
        // and every unlock from their submits, so one cheap statement finds
        // whether this batch needs anything: counting rows costs several times
        // less than probing 31 rows per user for a conflict, and the unlock
        // statement is costly to plan (a branch per producer schema).
        let (in_range, present, candidates): (i64, i64, i64) = self
            .masks
            .bind_candidates(
                // Unnamed, for a plan that sees this batch's bounds.
                db::query_as(sql::survey(batch)).persistent(false),
                batch,
                first_excluded,
                users,
                last,
                &self.slugs,
            )
            .fetch_one(&mut *tx)
            .await?;

        // New rows start locked; the unlock below opens those whose needs are
        // met (including tools with no required dependencies). The users are
        // read again, key-share locked: one an operator deleted since the batch
        // read its ids is skipped, not a foreign-key error that ends the run.
        let missing = present < in_range * self.slugs.len() as i64;
        if missing {
            report.rows_created += db::query(
                "insert into shared.user_progress (user_id, tool_slug, status)
                 select u.id, t, 'locked'
                 from (select id from shared.users where id = any($1::uuid[]) for key share) as u
                 cross join unnest($2::text[]) as t
                 where not exists (select 1 from shared.user_progress p where p.user_id = u.id and p.tool_slug = t)
                 on conflict (user_id, tool_slug) do nothing",
            )
            .bind(users)
            .bind(&self.slugs)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if missing || candidates > 0 {
            let unlock_sql = self.unlock_sql(batch);
            let unlocked: Vec<(Uuid, String)> = self
                .masks
                .bind_candidates(
                    db::query_as(unlock_sql).persistent(false),
                    batch,
                    first_excluded,
                    users,
                    last,
                    &self.slugs,
                )
                .bind(&self.masks.fields)
                .bind(&self.masks.field_bits)
                .bind(&self.masks.no_fields)
                .fetch_all(&mut *tx)
                .await?;
            for (_, slug) in unlocked {
                *report.unlocked.entry(slug).or_default() += 1;
            }
        }

        // The marks still as read: one renewed since (by a change this batch's
        // statements may not have seen) stays, and so does one locked by a
        // change still running, which will renew it.
        if !batched.marks.is_empty() {
            let (ids, marks): (Vec<Uuid>, Vec<i64>) = batched.marks.iter().copied().unzip();
            report.marks_cleared += db::query(
                "delete from shared.recompute_dirty d
                 using (
                     select r.user_id from shared.recompute_dirty r
                     join unnest($1::uuid[], $2::bigint[]) as c(user_id, mark)
                       on c.user_id = r.user_id and c.mark = r.mark
                     for update of r skip locked
                 ) as claimed
                 where d.user_id = claimed.user_id",
            )
            .bind(&ids)
            .bind(&marks)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        Ok(())
    }

    fn unlock_sql(&self, batch: Batch) -> Sql {
        let cell = match batch {
            Batch::Range => &self.unlock_range,
            Batch::Listed => &self.unlock_listed,
        };
        cell.get_or_init(|| sql::recompute_unlocks(self.registry, batch))
            .clone()
    }
}

/// What the recompute depends on in the registry, as a SHA-256 in hex: every
/// tool's slug and schema, in order, with the fields it requires and the tools
/// that produce them. A run whose registry has another fingerprint than the
/// last full sweep's sweeps every user.
pub fn registry_fingerprint(registry: &Registry) -> String {
    let mut hasher = Sha256::new();
    for tool in registry.tools() {
        hasher.update(tool.slug.as_bytes());
        hasher.update([0]);
        hasher.update(tool.schema.as_str().as_bytes());
        hasher.update([0]);
        let required: BTreeSet<(&str, &str)> = tool
            .required_dependencies()
            .map(|d| (d.field.as_str(), d.source.as_str()))
            .collect();
        for (field, source) in required {
            hasher.update(field.as_bytes());
            hasher.update([1]);
            hasher.update(source.as_bytes());
            hasher.update([0]);
        }
        hasher.update([2]);
    }
    hex::encode(hasher.finalize())
}

/// The bit strings of [`sql::survey`] and
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
        batch: Batch,
        first_excluded: Uuid,
        users: &'q [Uuid],
        last: Uuid,
        slugs: &'q [&str],
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        let query = match batch {
            Batch::Range => query.bind(first_excluded),
            Batch::Listed => query.bind(users),
        };
        query
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_asks_for_a_full_sweep_only_with_full_true() {
        assert_eq!(Scope::from_event(&json!({"full": true})), Ok(Scope::All));
        assert_eq!(
            Scope::from_event(&json!({"full": false})),
            Ok(Scope::Changed)
        );
        let scheduled = json!({"source": "aws.scheduler", "detail": {}});
        assert_eq!(Scope::from_event(&scheduled), Ok(Scope::Changed));
        assert_eq!(Scope::from_event(&json!(null)), Ok(Scope::Changed));
        assert!(Scope::from_event(&json!({"full": "yes"})).is_err());
    }

    #[test]
    fn the_registry_fingerprint_is_stable_and_follows_what_the_recompute_reads() {
        let embedded = Registry::embedded();
        let fingerprint = registry_fingerprint(embedded);
        assert_eq!(fingerprint.len(), 64);
        assert_eq!(registry_fingerprint(embedded), fingerprint);
        // The same registry with one tool fewer (the last, which nothing
        // depends on) is another registry.
        let mut fewer: serde_json::Value =
            serde_json::from_str(include_str!("../../../config/tool-registry.json")).unwrap();
        let tools = fewer["tools"].as_array_mut().unwrap();
        let last = tools.pop().unwrap();
        let mut dependencies_fewer: serde_json::Value =
            serde_json::from_str(include_str!("../../../config/dependencies.json")).unwrap();
        if let Some(map) = dependencies_fewer.as_object_mut() {
            for value in map.values_mut() {
                if let Some(tools) = value.as_object_mut() {
                    tools.remove(last["slug"].as_str().unwrap());
                }
            }
        }
        let smaller =
            Registry::from_json(&fewer.to_string(), &dependencies_fewer.to_string()).unwrap();
        assert_ne!(registry_fingerprint(&smaller), fingerprint);
    }
}
