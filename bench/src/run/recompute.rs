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
    let changed = time_changed_run(large_url, options.runs, changed_users).await?;
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
                "recompute, 1% of {} users changed ({changed_users})",
                options.users
            ),
            changed,
            "s",
        )
        .against(format!("full sweep of {}", options.users), large)
        .budget(Budget::RatioAtMost(0.05)),
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

/// The median of `runs` scheduled runs, each after `users` users (spread over
/// the ids) had their unlocked tools locked again: each such change marks its
/// user through the triggers, and the run unlocks the tools again, so the
/// database ends as it began. A scheduled run first, untimed, takes off the
/// marks left by anything before.
async fn time_changed_run(url: &str, runs: usize, users: usize) -> Result<f64> {
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
        let (changed, relocked): (i64, i64) = db::query_as(
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
        .fetch_one(&mut *pool.acquire().await?)
        .await?;
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
