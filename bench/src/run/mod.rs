//! `fasttrack-bench run`: every measurement of the harness in one command,
//! each beside the anchor it is judged against, printed as one table and
//! optionally written to a dated result file.

mod databases;
mod functions;
mod options;
mod recompute;
mod reports;
mod result_file;
mod rights;
mod round_trips;
mod routes;

use std::time::Instant;

use anyhow::Result;

use crate::database;
use crate::fixtures;
use crate::report::{Row, step};
use databases::{copied_database, generated_database, organized_database};
pub use options::{Options, Section};
use shared::foundation::db;

pub async fn run(database_url: &str, options: Options) -> Result<Vec<Row>> {
    let started = Instant::now();
    let admin = database::connect(database_url, 2).await?;
    let postgres: String = db::query_scalar("select version()")
        .fetch_one(&admin)
        .await?;
    let work = std::env::temp_dir().join(format!("fasttrack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut rows = Vec::new();
    let generated = |rows: &mut Vec<Row>, users: usize, seconds: Option<f64>| {
        if let Some(seconds) = seconds {
            rows.push(Row::info(
                format!("generate {users} users (COPY)"),
                seconds,
                "s",
            ));
        }
    };

    // Every section reads the large database (the functions' recompute pass too).
    let (large_url, seconds) = generated_database(
        &admin,
        database_url,
        options.reuse,
        "fasttrack_bench_large",
        options.users,
    )
    .await?;
    generated(&mut rows, options.users, seconds);
    let keys = fixtures::token_keys();

    // Erasing destroys: the rights section has a database of its own, made
    // afresh every run. It is the small database's twin (the same users,
    // organizations and seed), so it is copied from that one before anything
    // runs on it, when the recompute generates it.
    let mut rights_url = None;
    if options.runs(Section::Recompute) {
        let (small_url, seconds) = generated_database(
            &admin,
            database_url,
            options.reuse,
            "fasttrack_bench_small",
            options.small_users,
        )
        .await?;
        generated(&mut rows, options.small_users, seconds);
        if options.runs(Section::Rights) {
            rights_url = Some(
                copied_database(
                    &admin,
                    database_url,
                    "fasttrack_bench_small",
                    "fasttrack_bench_rights",
                )
                .await?,
            );
        }
        let huge_url = match options.sweep_users {
            Some(users) => {
                let (url, seconds) = generated_database(
                    &admin,
                    database_url,
                    options.reuse,
                    "fasttrack_bench_huge",
                    users,
                )
                .await?;
                generated(&mut rows, users, seconds);
                Some(url)
            }
            None => None,
        };
        rows.extend(
            recompute::growth(&options, &small_url, &large_url, huge_url.as_deref()).await?,
        );
    }
    if options.runs(Section::Load) {
        rows.extend(routes::load_against_pgbench(&options, &large_url, &keys, &work).await?);
    }
    if options.runs(Section::RoundTrips) {
        step("counting round trips with pg_stat_statements");
        rows.extend(round_trips::round_trips(&options, &large_url, &keys, &work).await?);
    }
    if options.runs(Section::Rights) {
        let rights_url = match rights_url {
            Some(url) => url,
            None => {
                let (url, seconds) = generated_database(
                    &admin,
                    database_url,
                    false,
                    "fasttrack_bench_rights",
                    options.small_users,
                )
                .await?;
                generated(&mut rows, options.small_users, seconds);
                url
            }
        };
        rows.extend(rights::rights(&options, &large_url, &rights_url, &work).await?);
    }
    if options.runs(Section::Reports) {
        let (reports_url, seconds) = organized_database(
            &admin,
            database_url,
            options.reuse,
            "fasttrack_bench_reports",
            options.organization_members,
            1,
        )
        .await?;
        generated(&mut rows, options.organization_members, seconds);
        rows.extend(reports::reports(&options, &reports_url, &keys, &work).await?);
    }
    if options.runs(Section::Functions) {
        let (cold_url, _) = generated_database(
            &admin,
            database_url,
            options.reuse,
            "fasttrack_bench_cold",
            100,
        )
        .await?;
        step("cold starts, peak memory and binary sizes");
        rows.extend(functions::functions(&options, &cold_url, &large_url, &keys).await?);
    }

    rows.push(Row::info(
        "the harness itself (wall time)",
        started.elapsed().as_secs_f64() / 60.0,
        "min",
    ));
    result_file::write_if_whole(&options, &postgres, &rows)?;
    let _ = std::fs::remove_dir_all(&work);
    admin.close().await;
    Ok(rows)
}
