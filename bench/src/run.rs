//! `fasttrack-bench run`: every measurement of the harness in one command,
//! each beside the anchor it is judged against, printed as one table and
//! optionally written to a dated result file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use uuid::Uuid;

use crate::backend::{Placeholders, Registry, TokenKeys, db, recompute, render, users};
use crate::cold_start::{self, ColdStart, Function};
use crate::database::{self, with_database};
use crate::fixtures::{self, WEBHOOK_SECRET, launch_body, service_env, webhook_request};
use crate::generate;
use crate::http;
use crate::load::{self, Route};
use crate::report::{self, Budget, Row};
use crate::rng::Rng;
use crate::server::Server;

const SEED: u64 = 42;

/// The Lambda functions, as `cargo build --release` names their binaries.
const FUNCTIONS: [&str; 6] = [
    "submit-tool",
    "get-progress",
    "resolve-dependencies",
    "sync-user",
    "recompute-unlocks",
    "migrate",
];
/// The anchor: the hello-world as public benchmarks build it (`#[tokio::main]`).
const HELLO: &str = "fasttrack-bench-hello";
/// The same on a current-thread runtime, as the functions run: information.
const HELLO_CURRENT_THREAD: &str = "fasttrack-bench-hello-current-thread";
/// The functions that may reach PostgreSQL through a transaction pooler (all
/// but migrate, whose migrator holds a session lock).
const POOLABLE: [&str; 5] = [
    "submit-tool",
    "get-progress",
    "resolve-dependencies",
    "sync-user",
    "recompute-unlocks",
];

/// The parts of a run, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// recompute-unlocks at two sizes.
    Recompute,
    /// Each route under wrk beside pgbench running its SQL.
    Load,
    /// Round trips per request, from pg_stat_statements.
    RoundTrips,
    /// Cold starts, peak memory and binary sizes of the Lambda binaries.
    Functions,
}

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Users in the large database (routes, recompute budget).
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Users in the small database (recompute growth).
    #[arg(long, default_value_t = 10_000)]
    pub small_users: usize,
    /// Seconds per load measurement (4 keeps a first `make bench`, release
    /// build included, under the issue's 15 minutes).
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
    /// Repeats of each measurement; the table shows medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// Where `fasttrack`, the function binaries and the hello-world are.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    #[arg(long, default_value_t = 31)]
    pub cold_runs: usize,
    #[arg(long, default_value_t = 200)]
    pub rss_invocations: usize,
    #[arg(long, default_value_t = 20)]
    pub round_trip_requests: usize,
    /// Keep databases generated earlier with the same size and seed.
    #[arg(long)]
    pub reuse: bool,
    #[arg(long)]
    pub pgbench: Option<PathBuf>,
    /// A transaction-mode pooler (PgBouncer) in front of DATABASE_URL's server:
    /// the route functions' cold starts are also measured through it, as
    /// production runs them.
    #[arg(long)]
    pub pooler_url: Option<String>,
    /// Only these parts (all when absent).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Section>,
    /// Also write the results, with the machine, as Markdown here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Options {
    fn runs(&self, section: Section) -> bool {
        self.only.is_empty() || self.only.contains(&section)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[values.len() / 2]
}

fn step(message: &str) {
    eprintln!("\x1b[1m==>\x1b[0m {message}");
}

/// A database of `users` generated users, made afresh unless `reuse` finds one
/// generated with the same size and seed. Returns its URL and the generation
/// time (`None` when reused).
async fn database(
    admin: &PgPool,
    server_url: &str,
    reuse: bool,
    name: &str,
    users: usize,
) -> Result<(String, Option<f64>)> {
    let url = with_database(server_url, name);
    let marker = format!("fasttrack-bench users={users} seed={SEED}");
    let existing: Option<Option<String>> = db::query_scalar(
        "select shobj_description(oid, 'pg_database') from pg_database where datname = $1",
    )
    .bind(name)
    .fetch_optional(admin)
    .await?;
    if reuse
        && existing
            .as_ref()
            .is_some_and(|m| m.as_deref() == Some(&marker))
    {
        step(&format!("reusing {name} ({users} users)"));
        return Ok((url, None));
    }
    step(&format!("generating {users} users into {name}"));
    let quoted = format!("\"{name}\"");
    db::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists {quoted} with (force)"
    )))
    .execute(admin)
    .await
    .with_context(|| format!("dropping {name}"))?;
    db::query(sqlx::AssertSqlSafe(format!("create database {quoted}")))
        .execute(admin)
        .await
        .with_context(|| format!("creating {name}"))?;
    let pool = database::connect(&url, 2).await?;
    database::migrate(&pool).await?;
    let started = Instant::now();
    generate::generate(
        &pool,
        Registry::embedded(),
        &generate::Spec {
            users,
            organizations: (users / 200).clamp(1, 500),
            seed: SEED,
            batch: 2_000,
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    db::query("vacuum analyze").execute(&pool).await?;
    pool.close().await;
    db::query(sqlx::AssertSqlSafe(format!(
        "comment on database {quoted} is '{marker}'"
    )))
    .execute(admin)
    .await?;
    Ok((url, Some(seconds)))
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
    let (large_url, seconds) = database(
        &admin,
        database_url,
        options.reuse,
        "fasttrack_bench_large",
        options.users,
    )
    .await?;
    generated(&mut rows, options.users, seconds);
    let keys = TokenKeys::new(&fixtures::settings());

    if options.runs(Section::Recompute) {
        let (small_url, seconds) = database(
            &admin,
            database_url,
            options.reuse,
            "fasttrack_bench_small",
            options.small_users,
        )
        .await?;
        generated(&mut rows, options.small_users, seconds);
        rows.extend(recompute_growth(&options, &small_url, &large_url).await?);
    }
    if options.runs(Section::Load) {
        rows.extend(load_against_pgbench(&options, &large_url, &keys, &work).await?);
    }
    if options.runs(Section::RoundTrips) {
        step("counting round trips with pg_stat_statements");
        rows.extend(round_trips(&options, &large_url, &keys, &work).await?);
    }
    if options.runs(Section::Functions) {
        let (cold_url, _) = database(
            &admin,
            database_url,
            options.reuse,
            "fasttrack_bench_cold",
            100,
        )
        .await?;
        step("cold starts, peak memory and binary sizes");
        rows.extend(functions(&options, &cold_url, &large_url, &keys).await?);
    }

    rows.push(Row::info(
        "the harness itself (wall time)",
        started.elapsed().as_secs_f64() / 60.0,
        "min",
    ));
    // A result file records a whole run; a partial one (--only) is not written.
    match &options.out {
        Some(out) if options.only.is_empty() => {
            write_result(out, &options, &postgres, &rows)?;
            step(&format!("wrote {}", out.display()));
        }
        Some(out) => step(&format!(
            "a partial run (--only): {} not written",
            out.display()
        )),
        None => {}
    }
    let _ = std::fs::remove_dir_all(&work);
    admin.close().await;
    Ok(rows)
}

/// The recompute at two sizes: the budget at the large one, and how the cost
/// per user grows.
async fn recompute_growth(options: &Options, small_url: &str, large_url: &str) -> Result<Vec<Row>> {
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

/// Each route under wrk against the local server, beside pgbench running the
/// route's own statements, at each concurrency.
async fn load_against_pgbench(
    options: &Options,
    large_url: &str,
    keys: &TokenKeys,
    work: &Path,
) -> Result<Vec<Row>> {
    let pgbench = load::find_pgbench(options.pgbench.as_deref())?;
    let large_pool = database::connect(large_url, 2).await?;
    let mut workloads = Vec::new();
    for (i, route) in Route::ALL.into_iter().enumerate() {
        let calls = load::sample(
            &large_pool,
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
        workloads.push((route, calls, dir, pgbench_args));
    }
    let load_began: chrono::DateTime<chrono::Utc> = db::query_scalar("select current_timestamp")
        .fetch_one(&large_pool)
        .await?;
    // Each wrk run's bodies are its own: deliveries numbered with the run,
    // launches signed for it (a launch is good once).
    let tag = format!("{:x}", chrono::Utc::now().timestamp_millis());
    let (mut wrk_runs, mut launch_runs) = (0, 0);
    let mut rows = Vec::new();
    for &c in &options.concurrency {
        step(&format!("load at concurrency {c}"));
        let server = Server::start(
            &options.bin_dir,
            large_url,
            c,
            &work.join(format!("server-c{c}.log")),
        )?;
        for (route, calls, dir, pgbench_args) in &workloads {
            let (mut ours, mut anchor, mut p50, mut p99) = (vec![], vec![], vec![], vec![]);
            for _ in 0..options.runs.max(1) {
                let script = dir.join("wrk.lua");
                let script_text = load::wrk_script(calls, &format!("{tag}-{wrk_runs}"), dir);
                std::fs::write(&script, script_text)?;
                if *route == Route::Launch {
                    load::launch_files(
                        &large_pool,
                        dir,
                        launch_runs,
                        load::wrk_threads(c),
                        LAUNCHES_PER_SECOND * options.seconds as usize,
                        chrono::Utc::now().timestamp(),
                    )
                    .await?;
                    launch_runs += 1;
                }
                wrk_runs += 1;
                let t = load::run_wrk(server.port, &script, c, options.seconds)
                    .with_context(|| format!("{} at c={c}", route.name()))?;
                ours.push(t.per_second);
                p50.push(t.p50_ms);
                p99.push(t.p99_ms);
                anchor.push(
                    load::run_pgbench(&pgbench, large_url, pgbench_args, c, options.seconds)
                        .with_context(|| format!("{} at c={c}", route.name()))?,
                );
            }
            let budget = match (route, c) {
                (Route::Progress | Route::Resolve, 16) => Budget::RatioAtLeast(0.5),
                (Route::Submit, 16) => Budget::RatioAtLeast(0.35),
                _ => Budget::None,
            };
            rows.push(
                Row::info(
                    format!("{} c={c} throughput", route.name()),
                    median(ours),
                    "req/s",
                )
                .against("pgbench, same SQL", median(anchor))
                .budget(budget),
            );
            rows.push(Row::info(
                format!("{} c={c} latency p50", route.name()),
                median(p50),
                "ms",
            ));
            rows.push(Row::info(
                format!("{} c={c} latency p99", route.name()),
                median(p99),
                "ms",
            ));
        }
        drop(server);
    }
    // The deliveries and launches the load recorded go, so that a later run
    // with --reuse starts from the generated data (and its recompute does not
    // spend a pass deleting expired launches).
    for sql in [
        "delete from shared.webhook_events where received_at >= $1",
        "delete from shared.webhook_last_deliveries where received_at >= $1",
        "delete from shared.session_launches where used_at >= $1",
    ] {
        db::query(sql).bind(load_began).execute(&large_pool).await?;
    }
    large_pool.close().await;
    Ok(rows)
}

/// Signed launches made for each wrk thread and second of a run: well over
/// what a wrk thread sends on this machine (about 3,000 a second), since a
/// launch cannot be used twice.
const LAUNCHES_PER_SECOND: usize = 10_000;

struct RoundTripCase {
    name: &'static str,
    budget: Budget,
    requests: Vec<http::Request>,
    /// Text every answer's body must contain (besides a 2xx status).
    expect: &'static str,
}

async fn round_trips(
    options: &Options,
    url: &str,
    keys: &TokenKeys,
    work: &Path,
) -> Result<Vec<Row>> {
    let pool = database::connect(url, 2).await?;
    db::query("create extension if not exists pg_stat_statements")
        .execute(&pool)
        .await
        .context("pg_stat_statements is needed to count round trips (shared_preload_libraries)")?;
    let registry = Registry::embedded();
    let k = options.round_trip_requests.max(1);
    let now = chrono::Utc::now().timestamp();

    // Fresh participants, so that submitting woop unlocks what follows it.
    let mut fresh = Vec::new();
    let mut rng = Rng::new(SEED ^ now as u64);
    for i in 0..k {
        let lms = format!("{:024x}", rng.next() as u128 * 1_000 + i as u128);
        let user = users::LmsUser {
            lms_user_id: lms[..24].to_owned(),
            email: format!("rt-{lms}@bench.test"),
            full_name: format!("Round Trip {i}"),
            organization: users::Membership::Unchanged,
        };
        let mut conn = pool.acquire().await?;
        let synced = users::sync(&mut conn, registry, &user, false).await?;
        fresh.push(synced.id);
    }
    let unix = now as u64;
    let bearer =
        |user: Uuid| -> Result<String> { Ok(format!("Bearer {}", keys.issue(user, unix)?.0)) };
    let woop = registry.tool("woop").context("no woop in the registry")?;
    let mut cases = Vec::new();
    let get = |path: String, user: Uuid| -> Result<http::Request> {
        Ok(http::Request {
            method: "GET",
            path,
            headers: vec![("authorization", bearer(user)?)],
            body: None,
        })
    };
    let progress: Result<Vec<_>> = fresh.iter().map(|u| get("/progress".into(), *u)).collect();
    let resolve: Result<Vec<_>> = fresh
        .iter()
        .map(|u| get("/tools/dream/dependencies".into(), *u))
        .collect();
    let read: Result<Vec<_>> = fresh
        .iter()
        .map(|u| get("/tools/woop/submission".into(), *u))
        .collect();
    let put = |user: Uuid, slug: &str, body: String| -> Result<http::Request> {
        Ok(http::Request {
            method: "PUT",
            path: format!("/tools/{slug}/submission"),
            headers: vec![
                ("authorization", bearer(user)?),
                ("content-type", "application/json".into()),
            ],
            body: Some(body),
        })
    };
    let mut unlocking = Vec::new();
    let mut drafts = Vec::new();
    for user in &fresh {
        let call = load::submit_call(registry, woop, *user, None, String::new(), &mut rng);
        unlocking.push(put(*user, "woop", call.body.fixed().unwrap_or_default())?);
        drafts.push(put(
            *user,
            "know-thyself",
            r#"{"data": {"dream": "A bakery on every corner"}, "status": "draft"}"#.into(),
        )?);
    }
    cases.push(RoundTripCase {
        name: "get-progress (GET /progress)",
        budget: Budget::ValueEquals(1.0),
        requests: progress?,
        expect: "\"tools\"",
    });
    cases.push(RoundTripCase {
        name: "resolve-dependencies (GET /tools/dream/dependencies)",
        budget: Budget::ValueEquals(1.0),
        requests: resolve?,
        expect: "\"dependencies\"",
    });
    cases.push(RoundTripCase {
        name: "submit-tool: submit that unlocks (PUT woop)",
        budget: Budget::ValueAtMost(4.0),
        requests: unlocking,
        expect: "know-thyself",
    });
    cases.push(RoundTripCase {
        name: "submit-tool: draft save (PUT know-thyself)",
        budget: Budget::None,
        requests: drafts,
        expect: "\"draft\"",
    });
    cases.push(RoundTripCase {
        name: "submit-tool: read (GET /tools/woop/submission)",
        budget: Budget::None,
        requests: read?,
        expect: "\"submission\"",
    });
    let webhook_template = serde_json::from_str::<serde_json::Value>(include_str!(
        "../../events/learnworlds-webhook.json"
    ))?["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (mut webhooks, mut launches) = (Vec::new(), Vec::new());
    for i in 0..k {
        let lms = format!("64d{:021x}", rng.next() as u128 * 100 + i as u128);
        let lms = &lms[..24];
        webhooks.push(webhook_request(
            webhook_template
                .replace("64b0000000000000000000e1", lms)
                .replace("event@example.com", &format!("webhook-{lms}@bench.test")),
        ));
        let email = format!("launch-{lms}@bench.test");
        launches.push(http::Request {
            method: "POST",
            path: "/sessions".into(),
            headers: vec![("content-type", "application/json".into())],
            body: Some(launch_body(lms, &email, "Launch Bench", now)),
        });
    }
    cases.push(RoundTripCase {
        name: "sync-user: webhook, new user (POST /webhooks/learnworlds)",
        budget: Budget::None,
        requests: webhooks,
        expect: "",
    });
    cases.push(RoundTripCase {
        name: "sync-user: session launch, new user (POST /sessions)",
        budget: Budget::None,
        requests: launches,
        expect: "\"token\"",
    });

    let server = Server::start(&options.bin_dir, url, 2, &work.join("server-rt.log"))?;
    let mut rows = Vec::new();
    for case in cases {
        // A request first, so that connecting is not counted.
        let warm = http::Request {
            method: "GET",
            path: "/progress".into(),
            headers: vec![("authorization", bearer(fresh[0])?)],
            body: None,
        };
        http::send(server.port, &warm)?;
        db::query("select pg_stat_statements_reset()")
            .execute(&pool)
            .await?;
        for request in &case.requests {
            let (status, body) = http::send(server.port, request)?;
            if !(200..300).contains(&status) || !body.contains(case.expect) {
                bail!(
                    "{}: answered {status}, expected 2xx with {:?}: {body:.300}",
                    case.name,
                    case.expect
                );
            }
        }
        let calls: i64 = db::query_scalar(
            "select coalesce(sum(calls), 0)::bigint from pg_stat_statements
             where dbid = (select oid from pg_database where datname = current_database())
               and query not ilike '%pg_stat_statements%'",
        )
        .fetch_one(&pool)
        .await?;
        rows.push(
            Row::info(
                format!("round trips per request: {}", case.name),
                calls as f64 / case.requests.len() as f64,
                "",
            )
            .budget(case.budget),
        );
    }
    drop(server);
    pool.close().await;
    Ok(rows)
}

async fn functions(
    options: &Options,
    cold_url: &str,
    large_url: &str,
    keys: &TokenKeys,
) -> Result<Vec<Row>> {
    let pool = database::connect(cold_url, 2).await?;
    let user: Uuid =
        db::query_scalar("select id from shared.users where role = 'user' order by id limit 1")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    let values = Placeholders {
        token: Some(keys.issue(user, chrono::Utc::now().timestamp() as u64)?.0),
        user_id: Some(user.to_string()),
        webhook_secret: Some(WEBHOOK_SECRET.to_owned()),
        launch_body: None,
    };
    let event = |name: &str| -> String {
        let template = match name {
            "submit-tool" => include_str!("../../events/save-submission.json"),
            "get-progress" => include_str!("../../events/own-progress.json"),
            "resolve-dependencies" => include_str!("../../events/tool-dependencies.json"),
            "sync-user" => include_str!("../../events/learnworlds-webhook.json"),
            "recompute-unlocks" => include_str!("../../events/recompute-schedule.json"),
            _ => "{}",
        };
        render(template, &values)
    };
    let direct_env = service_env(cold_url, 2);
    let large_env = service_env(large_url, 2);
    // Production's topology: the functions reach PostgreSQL through a
    // transaction-mode pooler, which keeps its server sessions open.
    let pooled_env = match &options.pooler_url {
        Some(url) => {
            let url = with_database(url, "fasttrack_bench_cold");
            warm_pooler(&url).await?;
            let mut env = service_env(&url, 2);
            env.push(("DATABASE_POOLER_MODE".into(), "transaction".into()));
            Some(env)
        }
        None => None,
    };
    let binaries: Vec<(&str, PathBuf)> = FUNCTIONS
        .iter()
        .chain([&HELLO, &HELLO_CURRENT_THREAD])
        .map(|name| (*name, options.bin_dir.join(name)))
        .collect();
    for (_, binary) in &binaries {
        if !binary.exists() {
            bail!(
                "{} is missing: build it with `cargo build --release --workspace`",
                binary.display()
            );
        }
    }

    // Interleaved, so that a noisy moment hurts every binary alike; the first
    // round only warms the page cache and is not counted.
    let mut starts: HashMap<(&str, Via), Vec<ColdStart>> = HashMap::new();
    for round in 0..=options.cold_runs.max(1) {
        for (name, binary) in &binaries {
            let mut paths = vec![(Via::Direct, &direct_env)];
            if POOLABLE.contains(name)
                && let Some(env) = &pooled_env
            {
                paths.push((Via::Pooler, env));
            }
            for (path, env) in paths {
                let function = Function {
                    name,
                    binary,
                    event: event(name),
                    env,
                };
                let start = cold_start::cold_start(&function).await?;
                if round > 0 {
                    starts.entry((name, path)).or_default().push(start);
                }
            }
        }
    }
    // Each measure's median over the rounds.
    let medians = |name: &str, path: Via| {
        let runs = starts.get(&(name, path)).cloned().unwrap_or_default();
        let of = |f: fn(&ColdStart) -> f64| median(runs.iter().map(f).collect());
        ColdStart {
            first_response: of(|c| c.first_response),
            init: of(|c| c.init),
            warm_response: of(|c| c.warm_response),
        }
    };
    let hello_start = medians(HELLO, Via::Direct);
    let (hello, hello_init) = (hello_start.first_response, hello_start.init);
    let hello_size = std::fs::metadata(options.bin_dir.join(HELLO))
        .map(|m| m.len())
        .unwrap_or(0) as f64
        / 1048576.0;
    let mut rows = vec![
        Row::info("cold start: lambda_runtime hello-world", hello, "ms"),
        Row::info(
            "  the same on a current-thread runtime, as the functions run",
            medians(HELLO_CURRENT_THREAD, Via::Direct).first_response,
            "ms",
        )
        .against("hello-world", hello),
        Row::info(
            "a new PostgreSQL session, connect and first statement (pgbench -C)",
            new_session_ms(options, cold_url)?,
            "ms",
        ),
    ];
    let cold_budget = Budget::RatioAtMost(2.0);
    for (name, binary) in &binaries {
        if [HELLO, HELLO_CURRENT_THREAD].contains(name) {
            continue;
        }
        // The budget applies to the path production takes: through the pooler
        // where one is given and the function can use it (migrate needs a
        // session of its own), else direct.
        let pooled = pooled_env.is_some() && POOLABLE.contains(name);
        let direct = medians(name, Via::Direct);
        let budgeted = if pooled {
            let through_pooler = medians(name, Via::Pooler);
            rows.push(
                Row::info(
                    format!("cold start: {name}, through PgBouncer"),
                    through_pooler.first_response,
                    "ms",
                )
                .against("hello-world", hello)
                .budget(cold_budget),
            );
            through_pooler
        } else {
            direct
        };
        rows.push(
            Row::info(
                format!("cold start: {name}, direct to PostgreSQL"),
                direct.first_response,
                "ms",
            )
            .against("hello-world", hello)
            .budget(if pooled { Budget::None } else { cold_budget }),
        );
        // What the first call costs beyond the same call warm: start-up, not
        // the call's own work (for a job, the whole job).
        rows.push(Row::info(
            format!("  the same invocation warm: {name}"),
            budgeted.warm_response,
            "ms",
        ));
        rows.push(
            Row::info(
                format!("  cold minus warm: {name}"),
                budgeted.first_response - budgeted.warm_response,
                "ms",
            )
            .against("hello-world", hello),
        );
        // Init ends with the first connection open (Lambda runs init with its
        // full CPU), so on the direct path it includes PostgreSQL's backend start.
        rows.push(
            Row::info(
                format!("  of which init, to its first poll: {name}"),
                budgeted.init,
                "ms",
            )
            .against("hello-world's", hello_init),
        );
        // The recompute's memory over the large database: a full pass.
        let (env, invocations) = if *name == "recompute-unlocks" {
            (&large_env, 1)
        } else {
            (&direct_env, options.rss_invocations)
        };
        let function = Function {
            name,
            binary,
            event: event(name),
            env,
        };
        rows.push(
            Row::info(
                format!("peak RSS: {name} ({invocations} invocations)"),
                cold_start::peak_rss_mib(&function, invocations).await?,
                "MiB",
            )
            .budget(Budget::ValueAtMost(40.0)),
        );
        let size = std::fs::metadata(binary)?.len() as f64 / 1048576.0;
        rows.push(
            Row::info(format!("binary size: {name}"), size, "MiB")
                .against("hello-world", hello_size)
                .budget(Budget::ValueAtMost(8.0)),
        );
    }
    Ok(rows)
}

/// How a function reaches PostgreSQL in a cold-start measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Via {
    Direct,
    Pooler,
}

/// Opens the pooler's server sessions, as production's busy pooler has them.
async fn warm_pooler(url: &str) -> Result<()> {
    let pool = database::connect(url, 2).await?;
    // The simple protocol: one message, so a transaction pooler cannot hand
    // its parse and its execution to different servers.
    for _ in 0..4 {
        sqlx::raw_sql("select 1")
            .execute(&pool)
            .await
            .context("through the pooler")?;
    }
    pool.close().await;
    Ok(())
}

/// What a direct cold start cannot avoid: PostgreSQL forking and starting a
/// backend, and that backend's first statement with cold caches. pgbench
/// connects anew for each transaction (`-C`) and reports the average.
fn new_session_ms(options: &Options, url: &str) -> Result<f64> {
    let pgbench = load::find_pgbench(options.pgbench.as_deref())?;
    let script =
        std::env::temp_dir().join(format!("fasttrack-new-session-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "select count(*) from shared.user_progress where user_id = gen_random_uuid();\n",
    )?;
    let output = Command::new(pgbench)
        .args(["-n", "-C", "-c", "1", "-t", "100", "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .context("running pgbench")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("latency average = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no latency in pgbench's output: {text}"))
}

fn write_result(out: &Path, options: &Options, postgres: &str, rows: &[Row]) -> Result<()> {
    let (passed, missed) = report::summary(rows);
    let mut text = format!(
        "# Benchmark results, {}\n\nProduced by `make bench` (`fasttrack-bench run`). Every ratio is against an anchor measured in the same run on the same machine; throughputs and latencies are medians of {} runs of {} s, cold starts medians of {} starts.\n\n## Machine\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        options.runs,
        options.seconds,
        options.cold_runs,
    );
    for (key, value) in report::machine(postgres) {
        text.push_str(&format!("- **{key}**: {value}\n"));
    }
    let pooler = match &options.pooler_url {
        Some(_) => "PgBouncer in transaction mode, in front of the same server",
        None => "none (cold starts direct only)",
    };
    text.push_str(&format!(
        "\n## Settings\n\n- users: {} (recompute also at {})\n- concurrency: {:?}\n- binaries: `{}`\n- pooler: {pooler}\n\n## Figures\n\n{passed} budgets met, {missed} missed.\n\n",
        options.users,
        options.small_users,
        options.concurrency,
        options.bin_dir.display()
    ));
    text.push_str(&report::markdown(rows));
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, text).with_context(|| out.display().to_string())
}
