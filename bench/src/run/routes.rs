//! Each route under wrk against the local server, beside pgbench running the
//! route's own statements, at each concurrency.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::options::{Options, SEED};
use crate::database;
use crate::load::{self, Call, Route, Throughput};
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
    let mut measured: Vec<Vec<(usize, Measured)>> = workloads.iter().map(|_| Vec::new()).collect();
    for &c in &options.concurrency {
        step(&format!("load at concurrency {c}"));
        let server = Server::start(
            &options.bin_dir,
            large_url,
            c,
            &work.join(format!("server-c{c}.log")),
        )?;
        warm(&server, &workloads[0], c)?;
        for (workload, measured) in workloads.iter().zip(&mut measured) {
            measured.push((c, runs.measure(&server, workload, c).await?));
        }
        drop(server);
    }
    let mut rows = Vec::new();
    for (workload, measured) in workloads.iter().zip(measured) {
        rows.extend(route_rows(workload.route.name(), &measured));
    }
    forget_recorded(&large_pool, load_began).await?;
    large_pool.close().await;
    Ok(rows)
}

/// A second of `workload` (a read) at `c` before the measurements, so that
/// the server's pool holds its `c` connections, each with its statements
/// prepared, as pgbench's clients have theirs before its clock starts
/// (its throughput is "without initial connection time").
pub fn warm(server: &Server, workload: &Workload, c: usize) -> Result<()> {
    let script = workload.dir.join("warm.lua");
    std::fs::write(
        &script,
        load::wrk_script(&workload.calls, "warm", &workload.dir),
    )?;
    load::run_wrk(server.port, &script, c, 1).context("warming the server's pool")?;
    Ok(())
}

/// A route's calls, and the pgbench scripts (in `dir`) that run their statements.
pub struct Workload {
    route: Route,
    calls: Vec<Call>,
    dir: PathBuf,
    pgbench_args: Vec<Vec<String>>,
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

/// Each run's figures for one route at one concurrency: ours under wrk, and
/// pgbench's on the same statements (its latencies from its own log).
#[derive(Default)]
pub struct Measured {
    pub ours: Vec<Throughput>,
    pub anchor: Vec<Throughput>,
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
        for _ in 0..options.load_runs.max(1) {
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
            let anchor = load::run_pgbench_timed(
                &self.pgbench,
                self.url,
                &workload.pgbench_args,
                c,
                options.seconds,
                &dir.join("pgbench-log"),
            )
            .with_context(|| format!("{} at c={c}", route.name()))?;
            eprintln!("    {} c={c}: ours {t}; pgbench {anchor}", route.name());
            measured.ours.push(t);
            measured.anchor.push(anchor);
        }
        Ok(measured)
    }
}

impl Measured {
    fn median(list: &[Throughput], f: impl Fn(&Throughput) -> f64) -> f64 {
        median(list.iter().map(f).collect())
    }

    pub fn ours(&self) -> Throughput {
        Throughput {
            per_second: Self::median(&self.ours, |t| t.per_second),
            p50_ms: Self::median(&self.ours, |t| t.p50_ms),
            p99_ms: Self::median(&self.ours, |t| t.p99_ms),
        }
    }

    pub fn anchor(&self) -> Throughput {
        Throughput {
            per_second: Self::median(&self.anchor, |t| t.per_second),
            p50_ms: Self::median(&self.anchor, |t| t.p50_ms),
            p99_ms: Self::median(&self.anchor, |t| t.p99_ms),
        }
    }
}

/// The concurrencies whose tails are judged.
pub const TAIL_CONCURRENCY: [usize; 2] = [16, 64];
/// What a route's best throughput must reach of its SQL's peak in pgbench.
pub const PEAK_RATIO: f64 = 0.8;
/// What our p99 may be of pgbench's p99 on the same SQL at the same c.
pub const TAIL_RATIO: f64 = 2.0;

/// A route's rows: its best throughput over the concurrencies against its
/// SQL's peak in pgbench over the same concurrencies (judged), then at each
/// concurrency its throughput, p50 and p99 beside pgbench's (the p99 judged
/// at [`TAIL_CONCURRENCY`]).
pub fn route_rows(name: &str, measured: &[(usize, Measured)]) -> Vec<Row> {
    let at: Vec<(usize, Throughput, Throughput)> = measured
        .iter()
        .map(|(c, m)| (*c, m.ours(), m.anchor()))
        .collect();
    let mut rows = Vec::new();
    let best = at
        .iter()
        .max_by(|a, b| a.1.per_second.total_cmp(&b.1.per_second));
    let peak = at
        .iter()
        .max_by(|a, b| a.2.per_second.total_cmp(&b.2.per_second));
    if let (Some((best_c, best, _)), Some((peak_c, _, peak))) = (best, peak) {
        rows.push(
            Row::info(
                format!("{name}: best throughput (at c={best_c})"),
                best.per_second,
                "req/s",
            )
            .against(
                format!("pgbench peak of its SQL (at c={peak_c})"),
                peak.per_second,
            )
            .budget(Budget::RatioAtLeast(PEAK_RATIO)),
        );
    }
    for (c, ours, theirs) in &at {
        rows.push(
            Row::info(format!("{name} c={c} throughput"), ours.per_second, "req/s")
                .against("pgbench, same SQL and c", theirs.per_second),
        );
        rows.push(
            Row::info(format!("{name} c={c} latency p50"), ours.p50_ms, "ms")
                .against("pgbench's p50", theirs.p50_ms),
        );
        let p99 = Row::info(format!("{name} c={c} latency p99"), ours.p99_ms, "ms")
            .against("pgbench's p99", theirs.p99_ms);
        rows.push(if TAIL_CONCURRENCY.contains(c) {
            p99.budget(Budget::RatioAtMost(TAIL_RATIO))
        } else {
            p99
        });
    }
    rows
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
