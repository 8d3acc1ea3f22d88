//! recompute-unlocks timed at two sizes.

use std::time::Instant;

use anyhow::{Result, bail};

use super::options::Options;
use crate::report::{Budget, Row, median, step};
use shared::Registry;
use shared::foundation::db;
use shared::unlocks::recompute;

/// The recompute at two sizes: the budget at the large one, and how the cost
/// per user grows.
pub async fn growth(options: &Options, small_url: &str, large_url: &str) -> Result<Vec<Row>> {
    step("timing recompute-unlocks");
    let small = time_recompute(small_url, options.runs).await?;
    let large = time_recompute(large_url, options.runs).await?;
    let per_user = |seconds: f64, users: usize| seconds * 1e6 / users.max(1) as f64;
    Ok(vec![
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
    ])
}

async fn time_recompute(url: &str, runs: usize) -> Result<f64> {
    let pool = db::Pool::connect(url, 2).await?;
    let mut seconds = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let report =
            recompute::run(&pool, Registry::embedded(), recompute::DEFAULT_BATCH_SIZE).await?;
        if report.skipped {
            bail!("the recompute skipped: another run holds its lock");
        }
        seconds.push(started.elapsed().as_secs_f64());
    }
    pool.close().await;
    Ok(median(seconds))
}
