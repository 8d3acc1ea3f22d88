//! The scheduled unlock recompute: a set-based pass over all users, in batches,
//! that gives users the progress rows of tools added to the registry and unlocks
//! every locked tool whose required fields are available. It never re-locks or
//! un-completes anything, and a second run changes nothing.
//!
//! A run holds a transaction-scoped advisory lock in a transaction kept open on
//! its own connection, so a concurrent run skips instead of waiting, and it stays
//! correct behind a transaction-mode pooler (which keeps one server for an open
//! transaction). Each batch commits on its own, on a second connection, so the
//! rows it changes are locked for a moment, not for the whole run.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db;
use crate::registry::Registry;
use crate::tool_sql;

const RECOMPUTE_LOCK: i64 = 0x6661_7374_7472_6b02; // "fasttrk" + 2

pub const DEFAULT_BATCH_SIZE: i64 = 5000;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Another run held the lock; nothing was done.
    pub skipped: bool,
    pub users: u64,
    /// Progress rows created for tools the users did not have yet.
    pub rows_created: u64,
    /// Tools unlocked, by slug.
    pub unlocked: BTreeMap<String, u64>,
    /// Idempotency keys and session launches past their lifetime, deleted.
    pub expired_deleted: u64,
}

impl Report {
    pub fn changed_anything(&self) -> bool {
        self.rows_created > 0 || !self.unlocked.is_empty()
    }
}

pub async fn run(
    pool: &PgPool,
    registry: &Registry,
    batch_size: i64,
) -> Result<Report, sqlx::Error> {
    if pool.options().get_max_connections() < 2 {
        return Err(sqlx::Error::Configuration(
            "the recompute needs a pool of at least 2 connections (one holds the run's lock)"
                .into(),
        ));
    }
    let mut guard = pool.begin().await?;
    let acquired: bool = db::query_scalar("select pg_try_advisory_xact_lock($1)")
        .bind(RECOMPUTE_LOCK)
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
    let mut requirement_tools = Vec::new();
    let mut requirement_fields = Vec::new();
    for tool in registry.tools() {
        for dep in tool.required_dependencies() {
            requirement_tools.push(tool.slug.as_str());
            requirement_fields.push(dep.field.as_str());
        }
    }
    let unlock_sql = tool_sql::recompute_unlocks(registry);

    let mut report = Report::default();
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let users: Vec<Uuid> =
            db::query_scalar("select id from shared.users where id > $1 order by id limit $2")
                .bind(after)
                .bind(batch_size)
                .fetch_all(&mut *tx)
                .await?;
        let Some(&last) = users.last() else { break };
        after = last;
        report.users += users.len() as u64;

        // New rows start locked; the unlock below opens those whose needs are met
        // (including tools with no required dependencies).
        report.rows_created += db::query(
            "insert into shared.user_progress (user_id, tool_slug, status)
             select u, t, 'locked' from unnest($1::uuid[]) as u cross join unnest($2::text[]) as t
             on conflict (user_id, tool_slug) do nothing",
        )
        .bind(&users)
        .bind(&slugs)
        .execute(&mut *tx)
        .await?
        .rows_affected();

        let unlocked: Vec<(Uuid, String)> = db::query_as(unlock_sql.clone())
            .bind(&users)
            .bind(&requirement_tools)
            .bind(&requirement_fields)
            .bind(&requirement_fields)
            .bind(&slugs)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        for (_, slug) in unlocked {
            *report.unlocked.entry(slug).or_default() += 1;
        }
    }

    let mut tx = pool.begin().await?;

    report.expired_deleted += db::query("delete from shared.idempotency_keys where created_at < current_timestamp - interval '24 hours'")
        .execute(&mut *tx)
        .await?
        .rows_affected();
    report.expired_deleted += db::query(
        "delete from shared.session_launches where used_at < current_timestamp - interval '1 day'",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    guard.commit().await?;

    tracing::info!(
        users = report.users,
        rows_created = report.rows_created,
        unlocked = ?report.unlocked,
        expired_deleted = report.expired_deleted,
        "recompute finished"
    );
    Ok(report)
}
