//! The Lambda binaries: cold starts against the hello-world anchor, direct
//! and through a pooler, peak memory over many invocations, and binary sizes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use uuid::Uuid;

use super::options::Options;
use crate::cold_start::{self, ColdStart, Function};
use crate::database::{self, with_database};
use crate::fixtures::{WEBHOOK_SECRET, service_env};
use crate::load;
use crate::report::{Budget, Row, median};
use shared::foundation::db;
use shared::http::events::Placeholders;
use shared::http::events::render;
use shared::sessions::TokenKeys;

/// The Lambda functions, as `cargo build --release` names their binaries:
/// the route functions, then the jobs.
const FUNCTIONS: [&str; 12] = [
    "submit-tool",
    "get-progress",
    "resolve-dependencies",
    "sync-user",
    "staff-reports",
    "staff-actions",
    "audit-log",
    "data-rights",
    "downloads",
    "recompute-unlocks",
    "migrate",
    "erase-users",
];
/// The anchor: the hello-world as public benchmarks build it (`#[tokio::main]`).
const HELLO: &str = "fasttrack-bench-hello";
/// The same on a current-thread runtime, as the functions run: information.
const HELLO_CURRENT_THREAD: &str = "fasttrack-bench-hello-current-thread";
/// The functions that reach PostgreSQL through a transaction pooler in
/// production (template.yaml): all but migrate, whose migrator holds a
/// session lock, and erase-users, which logs in as its own role straight to
/// the instance.
const POOLABLE: [&str; 10] = [
    "submit-tool",
    "get-progress",
    "resolve-dependencies",
    "sync-user",
    "staff-reports",
    "staff-actions",
    "audit-log",
    "data-rights",
    "downloads",
    "recompute-unlocks",
];

/// How a function reaches PostgreSQL in a cold-start measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Via {
    Direct,
    Pooler,
}

impl Envs {
    /// How `function` reaches the small database directly: migrate as the
    /// owner, as its own secret has it; the rest as the runtime login.
    fn direct_for(&self, function: &str) -> &Vec<(String, String)> {
        if function == "migrate" {
            &self.owner
        } else {
            &self.direct
        }
    }
}

/// Each binary's cold starts by path, one per counted round.
type Starts<'a> = HashMap<(&'a str, Via), Vec<ColdStart>>;

/// The environments the binaries start with.
struct Envs {
    /// The small database, direct.
    direct: Vec<(String, String)>,
    /// The small database as its owner: migrate's login (the route functions
    /// refuse it, and migrate needs it).
    owner: Vec<(String, String)>,
    /// The large database, direct: the recompute's memory is of a full pass.
    large: Vec<(String, String)>,
    /// The small database through the pooler, when one is given.
    pooled: Option<Vec<(String, String)>>,
}

/// The hello-world's figures, the anchor of every function's, and the floor
/// of a first invocation that reaches PostgreSQL directly.
struct Hello {
    first_response: f64,
    init: f64,
    size_mib: f64,
    /// A new PostgreSQL session, connect and first statement (pgbench -C).
    new_session: f64,
}

pub async fn functions(
    options: &Options,
    cold_url: &str,
    large_url: &str,
    keys: &TokenKeys,
) -> Result<Vec<Row>> {
    let values = placeholders(cold_url, keys).await?;
    // Cold starts are timed on an idle server, as the side-by-side measures.
    let pool = database::connect(cold_url, 1).await?;
    database::autovacuum_idle(&pool).await?;
    pool.close().await;
    let envs = Envs {
        direct: service_env(&as_runtime(cold_url).await?, 2),
        owner: service_env(cold_url, 2),
        // As the template starts the recompute: its statements may take a minute.
        large: [
            service_env(&as_runtime(large_url).await?, 2),
            vec![("DATABASE_STATEMENT_TIMEOUT_MS".into(), "60000".into())],
        ]
        .concat(),
        pooled: pooled_env(options).await?,
    };
    let binaries = binaries(options)?;
    let starts = cold_starts(options, &binaries, &envs, &values).await?;
    let hello_start = medians(&starts, HELLO, Via::Direct);
    let hello = Hello {
        first_response: hello_start.first_response,
        init: hello_start.init,
        size_mib: std::fs::metadata(options.bin_dir.join(HELLO))
            .map(|m| m.len())
            .unwrap_or(0) as f64
            / 1048576.0,
        new_session: new_session_ms(options, cold_url)?,
    };
    let mut rows = vec![
        Row::info(
            "cold start: lambda_runtime hello-world",
            hello.first_response,
            "ms",
        ),
        Row::info(
            "  the same on a current-thread runtime, as the functions run",
            medians(&starts, HELLO_CURRENT_THREAD, Via::Direct).first_response,
            "ms",
        )
        .against("hello-world", hello.first_response),
        Row::info("  of which init, to its first poll", hello.init, "ms"),
        Row::info(
            "a new PostgreSQL session, connect and first statement (pgbench -C)",
            hello.new_session,
            "ms",
        ),
    ];
    for (name, binary) in &binaries {
        if [HELLO, HELLO_CURRENT_THREAD].contains(name) {
            continue;
        }
        rows.extend(function_rows(options, name, binary, &values, &envs, &starts, &hello).await?);
    }
    Ok(rows)
}

/// `url` as the route functions log in: the runtime login, not the owner.
async fn as_runtime(url: &str) -> Result<String> {
    let owner = database::connect(url, 1).await?;
    let runtime = database::runtime_url(&owner, url).await;
    owner.close().await;
    runtime
}

/// The event placeholders: the first generated participant, a token for them.
async fn placeholders(cold_url: &str, keys: &TokenKeys) -> Result<Placeholders> {
    let pool = database::connect(cold_url, 2).await?;
    let user: Uuid =
        db::query_scalar("select id from shared.users where role = 'user' order by id limit 1")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok(Placeholders {
        token: Some(keys.issue(user, chrono::Utc::now().timestamp() as u64)?.0),
        user_id: Some(user.to_string()),
        webhook_secret: Some(WEBHOOK_SECRET.to_owned()),
        launch_body: None,
        refresh_token: None,
    })
}

/// The event each function is invoked with, from events/: for the staff
/// functions, a participant's own route, or (staff-reports, audit-log) a
/// staff route a participant is refused, in the SQL that reads.
fn event(name: &str, values: &Placeholders) -> String {
    let template = match name {
        "submit-tool" => include_str!("../../../events/save-submission.json"),
        "get-progress" => include_str!("../../../events/own-progress.json"),
        "resolve-dependencies" => include_str!("../../../events/tool-dependencies.json"),
        "sync-user" => include_str!("../../../events/learnworlds-webhook.json"),
        "staff-reports" => include_str!("../../../events/organizations.json"),
        "staff-actions" => include_str!("../../../events/activity-own.json"),
        "audit-log" => include_str!("../../../events/audit-log.json"),
        "data-rights" => include_str!("../../../events/export-own.json"),
        "downloads" => include_str!("../../../events/download-own.json"),
        "recompute-unlocks" => include_str!("../../../events/recompute-schedule.json"),
        _ => "{}",
    };
    render(template, values)
}

/// Production's topology: the functions reach PostgreSQL through a
/// transaction-mode pooler, which keeps its server sessions open.
async fn pooled_env(options: &Options) -> Result<Option<Vec<(String, String)>>> {
    let Some(url) = &options.pooler_url else {
        return Ok(None);
    };
    let url = with_database(url, "fasttrack_bench_cold");
    warm_pooler(&url).await?;
    // The runtime login exists: `functions` made it on this server.
    let mut env = service_env(&database::as_runtime_login(&url), 2);
    env.push(("DATABASE_POOLER_MODE".into(), "transaction".into()));
    Ok(Some(env))
}

/// The functions' and the hello-worlds' binaries, each of which must exist.
fn binaries(options: &Options) -> Result<Vec<(&'static str, PathBuf)>> {
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
    Ok(binaries)
}

/// Interleaved, so that a noisy moment hurts every binary alike; the first
/// round only warms the page cache and is not counted.
async fn cold_starts<'a>(
    options: &Options,
    binaries: &'a [(&'static str, PathBuf)],
    envs: &Envs,
    values: &Placeholders,
) -> Result<Starts<'a>> {
    let mut starts = Starts::new();
    for round in 0..=options.cold_runs.max(1) {
        for (name, binary) in binaries {
            let mut paths = vec![(Via::Direct, envs.direct_for(name))];
            if POOLABLE.contains(name)
                && let Some(env) = &envs.pooled
            {
                paths.push((Via::Pooler, env));
            }
            for (path, env) in paths {
                let function = Function {
                    name,
                    binary,
                    event: event(name, values),
                    env,
                };
                let start = cold_start::cold_start(&function).await?;
                if round > 0 {
                    starts.entry((name, path)).or_default().push(start);
                }
            }
        }
    }
    Ok(starts)
}

/// Each measure's median over the rounds.
fn medians(starts: &Starts<'_>, name: &str, path: Via) -> ColdStart {
    let runs = starts.get(&(name, path)).cloned().unwrap_or_default();
    let of = |f: fn(&ColdStart) -> f64| median(runs.iter().map(f).collect());
    ColdStart {
        first_response: of(|c| c.first_response),
        init: of(|c| c.init),
        warm_response: of(|c| c.warm_response),
    }
}

/// One function's rows: its cold start on each path, what of it is start-up
/// and init, its peak memory and its size.
async fn function_rows(
    options: &Options,
    name: &str,
    binary: &Path,
    values: &Placeholders,
    envs: &Envs,
    starts: &Starts<'_>,
    hello: &Hello,
) -> Result<Vec<Row>> {
    let mut rows = cold_start_rows(name, envs.pooled.is_some(), starts, hello);
    // The recompute's memory over the large database: a full pass.
    let (env, invocations) = if name == "recompute-unlocks" {
        (&envs.large, 1)
    } else {
        (envs.direct_for(name), options.rss_invocations)
    };
    let function = Function {
        name,
        binary,
        // A full sweep: a scheduled run covers only the users changed since
        // the last one.
        event: if name == "recompute-unlocks" {
            r#"{"full": true}"#.to_owned()
        } else {
            event(name, values)
        },
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
            .against("hello-world", hello.size_mib)
            .budget(Budget::ValueAtMost(8.0)),
    );
    Ok(rows)
}

/// A function's cold start on each path, and what of it is start-up and init.
/// The budget is init, process start to the first poll of the Runtime API,
/// on the path production takes: what the function itself adds before it can
/// take an event. The first invocation is information: a job's is its job,
/// and one that reaches PostgreSQL directly waits for a new backend first,
/// whose cost is printed beside it.
fn cold_start_rows(name: &str, pooler_given: bool, starts: &Starts<'_>, hello: &Hello) -> Vec<Row> {
    let mut rows = Vec::new();
    // Production's path: through the pooler where the function uses one,
    // else direct (migrate needs a session of its own; erase-users logs in
    // as its own role, straight to the instance).
    let pooled = pooler_given && POOLABLE.contains(&name);
    let direct = medians(starts, name, Via::Direct);
    let budgeted = if pooled {
        medians(starts, name, Via::Pooler)
    } else {
        direct
    };
    rows.push(
        Row::info(
            format!("init, to its first poll: {name}"),
            budgeted.init,
            "ms",
        )
        .against("hello-world's init", hello.init)
        .budget(Budget::RatioAtMost(1.5)),
    );
    if pooled {
        rows.push(
            Row::info(
                format!("  first invocation: {name}, through PgBouncer"),
                budgeted.first_response,
                "ms",
            )
            .against("hello-world", hello.first_response),
        );
    }
    rows.push(
        Row::info(
            format!("  first invocation: {name}, direct to PostgreSQL"),
            direct.first_response,
            "ms",
        )
        .against("a new PostgreSQL session", hello.new_session),
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
            format!("  first minus warm: {name}"),
            budgeted.first_response - budgeted.warm_response,
            "ms",
        )
        .against("hello-world", hello.first_response),
    );
    rows
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
