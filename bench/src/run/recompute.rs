//! recompute-unlocks: the full sweep at two sizes (and, optionally, a third),
//! and the scheduled run over 1% of the users changed beside it.

use std::time::Instant;

use anyhow::{Result, bail, ensure};

use super::options::Options;
use crate::report::{Budget, Row, median, step};
use shared::Registry;
use shared::foundation::db;
use shared::unlocks::recompute::{self, Housekeeping, Scope};

/// The full sweep at two sizes (the budget at the large one, and how the cost
/// per user grows), the sweep at `options.sweep_users` when asked for, and a
/// scheduled run with 1% of the large database's users changed, against the
/// full sweep.
pub async fn growth(
    options: &Options,
    small_url: &str,
    large_url: &str,
    huge_url: Option<&str>,
) -> Result<Vec<Row>> {
    step("timing recompute-unlocks");
    let small = time_full_sweep(small_url, options.runs).await?;
    let large = time_full_sweep(large_url, options.runs).await?;
    let changed_users = (options.users / 100).max(1);
    let changed =
        time_changed_run(large_url, options.runs, changed_users, Change::Submitted).await?;
    // Once: each change leaving tools to unlock again, the run's worst case.
    let relocked = time_changed_run(large_url, 1, changed_users, Change::Relocked).await?;
    let per_user = |seconds: f64, users: usize| seconds * 1e6 / users.max(1) as f64;
    let mut rows = vec![
        Row::info(
            format!("recompute-unlocks, {} users", options.small_users),
            small,
            "s",
        ),
        Row::info(
            format!("recompute-unlocks, {} users x 31 tools", options.users),
            large,
            "s",
        )
        .budget(Budget::ValueAtMost(10.0)),
        Row::info(
            format!("recompute cost per user at {}", options.users),
            per_user(large, options.users),
            "us",
        )
        .against(
            format!("per user at {}", options.small_users),
            per_user(small, options.small_users),
        )
        .budget(Budget::RatioAtMost(1.5)),
    ];
    if let (Some(url), Some(users)) = (huge_url, options.sweep_users) {
        let huge = time_full_sweep(url, options.runs).await?;
        rows.push(Row::info(
            format!("recompute-unlocks, {users} users x 31 tools"),
            huge,
            "s",
        ));
        rows.push(
            Row::info(
                format!("recompute cost per user at {users}"),
                per_user(huge, users),
                "us",
            )
            .against(
                format!("per user at {}", options.small_users),
                per_user(small, options.small_users),
            )
            .budget(Budget::RatioAtMost(1.5)),
        );
    }
    rows.push(
        Row::info(
            format!(
                "recompute, 1% of {} users changed ({changed_users}, as submits leave them)",
                options.users
            ),
            changed,
            "s",
        )
        .against(format!("full sweep of {}", options.users), large)
        .budget(Budget::RatioAtMost(0.05)),
    );
    rows.push(
        Row::info(
            format!("recompute, the same 1% each with tools to unlock again ({changed_users})"),
            relocked,
            "s",
        )
        .against(format!("full sweep of {}", options.users), large),
    );
    Ok(rows)
}

/// The median of `runs` full sweeps.
async fn time_full_sweep(url: &str, runs: usize) -> Result<f64> {
    let pool = db::Pool::connect(url, 2).await?;
    let mut seconds = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let report = recompute::run_with(
            &pool,
            Registry::embedded(),
            recompute::DEFAULT_BATCH_SIZE,
            Housekeeping::default(),
            Scope::All,
        )
        .await?;
        if report.skipped {
            bail!("the recompute skipped: another run holds its lock");
        }
        seconds.push(started.elapsed().as_secs_f64());
    }
    pool.close().await;
    Ok(median(seconds))
}

/// What the changed users went through before a timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// One of their completed tools submitted again, as a submit leaves a
    /// user: marked, and its unlocks done by the submit itself (the
    /// progress row moved out of completed and back, in one transaction).
    Submitted,
    /// Their unlocked tools locked again: marked, with every one of them for
    /// the run to unlock again.
    Relocked,
}

/// The median of `runs` scheduled runs, each after `users` users (spread over
/// the ids) were changed: each change marks its user through the triggers,
/// and the database ends as it began. A scheduled run first, untimed, takes
/// off the marks left by anything before.
async fn time_changed_run(url: &str, runs: usize, users: usize, change: Change) -> Result<f64> {
    let pool = db::Pool::connect(url, 2).await?;
    let scheduled = async || {
        recompute::run_with(
            &pool,
            Registry::embedded(),
            recompute::DEFAULT_BATCH_SIZE,
            Housekeeping::default(),
            Scope::Changed,
        )
        .await
    };
    scheduled().await?;
    let mut seconds = Vec::new();
    for run in 0..runs.max(1) {
        // A different sample each run, so none finds its pages warmer than
        // a real schedule would.
        let mut conn = pool.acquire().await?;
        let (changed, relocked): (i64, i64) = match change {
            Change::Relocked => {
                db::query_as(
                    "with ready as (
                         select distinct user_id from shared.user_progress where status = 'unlocked'
                     ), chosen as (
                         select user_id from ready order by md5(user_id::text || $2::text) limit $1
                     ), relocked as (
                         update shared.user_progress p set status = 'locked', unlocked_at = null
                         from chosen c where p.user_id = c.user_id and p.status = 'unlocked'
                         returning p.user_id
                     )
                     select count(distinct user_id), count(*) from relocked",
                )
                .bind(users as i64)
                .bind(run as i64)
                .fetch_one(&mut *conn)
                .await?
            }
            Change::Submitted => {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let (ids, slugs): (Vec<uuid::Uuid>, Vec<String>) = db::query_as(
                    "with chosen as (
                         select distinct on (user_id) user_id, tool_slug from shared.user_progress
                         where status = 'completed'
                           and user_id in (select id from shared.users order by md5(id::text || $2::text) limit $1)
                         order by user_id, tool_slug
                     ), reopened as (
                         update shared.user_progress p set status = 'in_progress'
                         from chosen c where p.user_id = c.user_id and p.tool_slug = c.tool_slug
                         returning p.user_id, p.tool_slug::text
                     )
                     select coalesce(array_agg(user_id), '{}'), coalesce(array_agg(tool_slug), '{}') from reopened",
                )
                .bind(users as i64)
                .bind(run as i64)
                .fetch_one(&mut *tx)
                .await?;
                db::query(
                    "update shared.user_progress p set status = 'completed'
                     from unnest($1::uuid[], $2::text[]) as c(user_id, tool_slug)
                     where p.user_id = c.user_id and p.tool_slug = c.tool_slug",
                )
                .bind(&ids)
                .bind(&slugs)
                .execute(&mut *tx)
                .await?;
                let changed = ids.len() as i64;
                tx.commit().await?;
                (changed, 0)
            }
        };
        drop(conn);
        let started = Instant::now();
        let report = scheduled().await?;
        seconds.push(started.elapsed().as_secs_f64());
        ensure!(
            !report.skipped,
            "the recompute skipped: another run holds its lock"
        );
        ensure!(
            !report.full && report.users == changed as u64,
            "the scheduled run recomputed {} users (full: {}), not the {changed} changed",
            report.users,
            report.full
        );
        let unlocked: u64 = report.unlocked.values().sum();
        ensure!(
            unlocked == relocked as u64,
            "the scheduled run unlocked {unlocked} tools, not the {relocked} locked again"
        );
    }
    pool.close().await;
    Ok(median(seconds))
}
