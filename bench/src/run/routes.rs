//! Each route under wrk against the local server, beside pgbench running the
//! route's own statements, at each concurrency.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::options::{Options, SEED};
use crate::database;
use crate::load::{self, Call, Route};
use crate::report::{Budget, Row, median, step};
use crate::server::Server;
use shared::Registry;
use shared::foundation::db;
use shared::sessions::TokenKeys;

/// Signed launches made for each wrk thread and second of a run: well over
/// what a wrk thread sends on this machine (about 3,000 a second), since a
/// launch cannot be used twice.
const LAUNCHES_PER_SECOND: usize = 10_000;

pub async fn load_against_pgbench(
    options: &Options,
    large_url: &str,
    keys: &TokenKeys,
    work: &Path,
) -> Result<Vec<Row>> {
    let pgbench = load::find_pgbench(options.pgbench.as_deref())?;
    let large_pool = database::connect(large_url, 2).await?;
    let workloads = workloads(&large_pool, keys, work).await?;
    let load_began: DateTime<Utc> = db::query_scalar("select current_timestamp")
        .fetch_one(&large_pool)
        .await?;
    let mut runs = Runs {
        options,
        pool: &large_pool,
        url: large_url,
        pgbench,
        // Each wrk run's bodies are its own: deliveries numbered with the run,
        // launches signed for it (a launch is good once).
        tag: format!("{:x}", Utc::now().timestamp_millis()),
        wrk_runs: 0,
        launch_runs: 0,
    };
    let mut rows = Vec::new();
    for &c in &options.concurrency {
        step(&format!("load at concurrency {c}"));
        let server = Server::start(
            &options.bin_dir,
            large_url,
            c,
            &work.join(format!("server-c{c}.log")),
        )?;
        for workload in &workloads {
            let measured = runs.measure(&server, workload, c).await?;
            rows.extend(measured.rows(workload.route, c));
        }
        drop(server);
    }
    forget_recorded(&large_pool, load_began).await?;
    large_pool.close().await;
    Ok(rows)
}

/// A route's calls, and the pgbench scripts (in `dir`) that run their statements.
struct Workload {
    route: Route,
    calls: Vec<Call>,
    dir: PathBuf,
    pgbench_args: Vec<String>,
}

async fn workloads(pool: &PgPool, keys: &TokenKeys, work: &Path) -> Result<Vec<Workload>> {
    let mut workloads = Vec::new();
    for (i, route) in Route::ALL.into_iter().enumerate() {
        let calls = load::sample(
            pool,
            Registry::embedded(),
            keys,
            route,
            load::CALLS,
            SEED + i as u64,
        )
        .await?;
        let dir = work.join(route.slug());
        std::fs::create_dir_all(&dir)?;
        let pgbench_args = load::pgbench_args(&calls, &dir)?;
        workloads.push(Workload {
            route,
            calls,
            dir,
            pgbench_args,
        });
    }
    Ok(workloads)
}

/// The wrk and pgbench runs of a load measurement, numbered across it.
struct Runs<'a> {
    options: &'a Options,
    pool: &'a PgPool,
    url: &'a str,
    pgbench: PathBuf,
    tag: String,
    wrk_runs: usize,
    launch_runs: usize,
}

/// Each run's figures for one route at one concurrency.
#[derive(Default)]
struct Measured {
    ours: Vec<f64>,
    anchor: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Runs<'_> {
    /// `--runs` runs of wrk on the server, each followed by pgbench on the
    /// same statements, at concurrency `c`.
    async fn measure(
        &mut self,
        server: &Server,
        workload: &Workload,
        c: usize,
    ) -> Result<Measured> {
        let (options, route, dir) = (self.options, workload.route, &workload.dir);
        let mut measured = Measured::default();
        for _ in 0..options.runs.max(1) {
            let script = dir.join("wrk.lua");
            let tag = format!("{}-{}", self.tag, self.wrk_runs);
            std::fs::write(&script, load::wrk_script(&workload.calls, &tag, dir))?;
            if route == Route::Launch {
                load::launch_files(
                    self.pool,
                    dir,
                    self.launch_runs,
                    load::wrk_threads(c),
                    LAUNCHES_PER_SECOND * options.seconds as usize,
                    Utc::now().timestamp(),
                )
                .await?;
                self.launch_runs += 1;
            }
            self.wrk_runs += 1;
            let t = load::run_wrk(server.port, &script, c, options.seconds)
                .with_context(|| format!("{} at c={c}", route.name()))?;
            measured.ours.push(t.per_second);
            measured.p50.push(t.p50_ms);
            measured.p99.push(t.p99_ms);
            measured.anchor.push(
                load::run_pgbench(
                    &self.pgbench,
                    self.url,
                    &workload.pgbench_args,
                    c,
                    options.seconds,
                )
                .with_context(|| format!("{} at c={c}", route.name()))?,
            );
        }
        Ok(measured)
    }
}

impl Measured {
    fn rows(self, route: Route, c: usize) -> [Row; 3] {
        let budget = match (route, c) {
            (Route::Progress | Route::Resolve, 16) => Budget::RatioAtLeast(0.5),
            (Route::Submit, 16) => Budget::RatioAtLeast(0.35),
            _ => Budget::None,
        };
        [
            Row::info(
                format!("{} c={c} throughput", route.name()),
                median(self.ours),
                "req/s",
            )
            .against("pgbench, same SQL", median(self.anchor))
            .budget(budget),
            Row::info(
                format!("{} c={c} latency p50", route.name()),
                median(self.p50),
                "ms",
            ),
            Row::info(
                format!("{} c={c} latency p99", route.name()),
                median(self.p99),
                "ms",
            ),
        ]
    }
}

/// The deliveries and launches the load recorded go, so that a later run
/// with --reuse starts from the generated data (and its recompute does not
/// spend a pass deleting expired launches).
async fn forget_recorded(pool: &PgPool, since: DateTime<Utc>) -> Result<()> {
    for sql in [
        "delete from shared.webhook_events where received_at >= $1",
        "delete from shared.webhook_last_deliveries where received_at >= $1",
        "delete from shared.session_launches where used_at >= $1",
    ] {
        db::query(sql).bind(since).execute(pool).await?;
    }
    Ok(())
}
