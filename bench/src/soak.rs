//! `fasttrack-bench soak`: sustained load on the local server, a mix of reads,
//! draft saves, submits and LearnWorlds syncs from many users, optionally with
//! a fault in the middle (every service connection terminated, or PostgreSQL
//! restarted). Afterwards the database is checked against what clients were
//! told: every acknowledged write present, no duplicate rows, every
//! submission's outputs equal to its submitted data, every completed tool with
//! its outputs, nothing unlocked without its dependencies. The server's memory
//! is sampled throughout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend::{Registry, TokenKeys, db, submissions};
use crate::database::{self, with_database};
use crate::fixtures::{self, webhook_request};
use crate::generate;
use crate::http;
use crate::rng::Rng;
use crate::server::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    None,
    /// `pg_terminate_backend` on every connection of the service, twice.
    Terminate,
    /// PostgreSQL restarted (the `--restart-command`).
    Restart,
}

pub struct Options {
    pub database_url: String,
    pub users: usize,
    pub seconds: u64,
    pub workers: usize,
    pub fault: Fault,
    pub restart_command: Option<String>,
    pub bin_dir: PathBuf,
    pub judge_memory: bool,
}

/// What one request did, as the client saw it.
struct Outcome {
    at: Duration,
    status: u16,
    latency: Duration,
}

#[derive(Default)]
struct Acks {
    /// (user, slug) -> (version, data) of every acknowledged save.
    saves: Vec<(Uuid, String, i64, Value)>,
    /// LearnWorlds ids of acknowledged syncs of new users.
    new_users: Vec<String>,
}

struct Participant {
    id: Uuid,
    lms_user_id: String,
    token: String,
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// One request of the mix. Returns the request and, for writes, what to
/// remember if it is acknowledged.
enum Write {
    None,
    Save(Uuid, String),
    NewUser(String),
}

fn next_request(
    rng: &mut Rng,
    registry: &Registry,
    people: &[Participant],
    worker: usize,
    n: u64,
) -> (http::Request, Write) {
    let who = pick(rng, people);
    let auth = ("authorization", format!("Bearer {}", who.token));
    let tool = pick(rng, registry.tools());
    let roll = rng.below(100);
    let get = |path: String| http::Request {
        method: "GET",
        path,
        headers: vec![auth.clone()],
        body: None,
    };
    match roll {
        0..=14 => (get("/progress".into()), Write::None),
        15..=29 => (
            get(format!("/tools/{}/dependencies", tool.slug)),
            Write::None,
        ),
        30..=39 => (get(format!("/tools/{}/submission", tool.slug)), Write::None),
        40..=84 => {
            let submit = roll >= 65;
            let mut data = serde_json::Map::new();
            for (i, output) in tool.outputs.iter().enumerate() {
                if submit || i % 2 == 0 {
                    data.insert(
                        output.key.clone(),
                        json!(format!("{} by worker {worker}, request {n}", output.key)),
                    );
                }
            }
            let status = if submit { "submitted" } else { "draft" };
            (
                http::Request {
                    method: "PUT",
                    path: format!("/tools/{}/submission", tool.slug),
                    headers: vec![auth, ("content-type", "application/json".into())],
                    body: Some(json!({"data": data, "status": status}).to_string()),
                },
                Write::Save(who.id, tool.slug.clone()),
            )
        }
        _ => {
            // A LearnWorlds sync: a new participant, or an update of one we have.
            let new = roll >= 93;
            let lms = if new {
                format!("5a{worker:04x}{n:018x}")
            } else {
                who.lms_user_id.clone()
            };
            let email = if new {
                format!("soak-{lms}@bench.test")
            } else {
                format!("updated-{lms}@bench.test")
            };
            let body = json!({
                "version": 2, "type": "userUpdated", "trigger": "user_updated", "school_id": "soak",
                "data": {"user": {"id": lms, "email": email, "username": lms,
                    "first_name": "Soak", "last_name": format!("Worker {worker}"), "tags": ["org:soak"]}}
            });
            (
                webhook_request(body.to_string()),
                if new {
                    Write::NewUser(lms)
                } else {
                    Write::None
                },
            )
        }
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

pub async fn soak(options: Options) -> Result<bool> {
    let registry = Registry::embedded();
    let admin = database::connect(&options.database_url, 2).await?;
    let name = "fasttrack_soak";
    let url = with_database(&options.database_url, name);
    for statement in [
        format!("drop database if exists {name} with (force)"),
        format!("create database {name}"),
    ] {
        db::query(sqlx::AssertSqlSafe(statement))
            .execute(&admin)
            .await?;
    }
    let pool = database::connect(&url, 2).await?;
    database::migrate(&pool).await?;
    generate::generate(
        &pool,
        registry,
        &generate::Spec {
            users: options.users,
            organizations: 4,
            seed: 7,
            batch: 1_000,
        },
    )
    .await?;
    let keys = TokenKeys::new(&fixtures::settings());
    let now = chrono::Utc::now().timestamp() as u64;
    let rows: Vec<(Uuid, String)> =
        db::query_as("select id, lms_user_id from shared.users where role = 'user' order by id")
            .fetch_all(&pool)
            .await?;
    let mut people = Vec::new();
    for (id, lms_user_id) in rows {
        people.push(Participant {
            id,
            lms_user_id,
            token: keys.issue(id, now)?.0,
        });
    }
    let people = Arc::new(people);

    let work = std::env::temp_dir().join(format!("fasttrack-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let server = Server::start(&options.bin_dir, &url, 4, &work.join("server.log"))?;
    let pid = server.pid();
    let port = server.port;
    eprintln!(
        "soak: {} s, {} workers, {} participants, fault: {:?}",
        options.seconds,
        options.workers,
        people.len(),
        options.fault
    );

    let started = Instant::now();
    let deadline = Duration::from_secs(options.seconds);
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for worker in 0..options.workers.max(1) {
        let (people, outcomes, acks) = (people.clone(), outcomes.clone(), acks.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(1000 + worker as u64);
            let mut n = 0u64;
            while started.elapsed() < deadline {
                n += 1;
                let (request, write) = next_request(&mut rng, registry, &people, worker, n);
                let sent = Instant::now();
                let (status, body) = http::send(port, &request).unwrap_or((0, String::new()));
                outcomes.lock().unwrap().push(Outcome {
                    at: sent.duration_since(started),
                    status,
                    latency: sent.elapsed(),
                });
                if !(200..300).contains(&status) {
                    continue;
                }
                let mut acks = acks.lock().unwrap();
                match write {
                    Write::Save(user, slug) => {
                        let saved: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        let version = saved["submission"]["version"].as_i64().unwrap_or(-1);
                        acks.saves
                            .push((user, slug, version, saved["submission"]["data"].clone()));
                    }
                    Write::NewUser(lms) => acks.new_users.push(lms),
                    Write::None => {}
                }
            }
        }));
    }
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                if let Some(mib) = rss_mib(pid) {
                    samples.push((started.elapsed(), mib));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        })
    };

    // The fault, a little before the middle of the run.
    let fault_at = deadline.mul_f64(0.4);
    let mut fault_window = None;
    if options.fault != Fault::None {
        tokio::time::sleep(fault_at.saturating_sub(started.elapsed())).await;
        let from = started.elapsed();
        match options.fault {
            Fault::Terminate => {
                for _ in 0..2 {
                    let killed: i64 = db::query_scalar(
                        // The victims first (`offset 0` keeps the filter from being
                        // reordered after the call), then the calls.
                        "select count(*) filter (where pg_terminate_backend(pid)) from (
                             select pid from pg_stat_activity
                             where datname = $1 and pid <> pg_backend_pid() offset 0
                         ) as service",
                    )
                    .bind(name)
                    .fetch_one(&admin)
                    .await?;
                    eprintln!("soak: terminated {killed} service connection(s)");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Fault::Restart => {
                let command = options
                    .restart_command
                    .clone()
                    .context("--fault restart needs --restart-command")?;
                admin.close().await;
                let status = tokio::task::spawn_blocking(move || {
                    Command::new("bash").args(["-c", &command]).status()
                })
                .await??;
                if !status.success() {
                    bail!("the restart command failed: {status}");
                }
                eprintln!("soak: PostgreSQL restarted");
            }
            Fault::None => {}
        }
        fault_window = Some((from, started.elapsed()));
    }
    tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    })
    .await?;
    done.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    drop(server);

    // What clients saw.
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let ok = count(&|o| (200..300).contains(&o.status));
    let client_errors = count(&|o| (400..500).contains(&o.status));
    let unavailable = count(&|o| o.status == 503);
    let other_server_errors = count(&|o| o.status >= 500 && o.status != 503);
    let no_answer = count(&|o| o.status == 0);
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for o in &outcomes {
        *by_status.entry(o.status).or_default() += 1;
    }
    let mut pass = true;
    let mut verdict = |what: String, good: bool| {
        println!("  {} {what}", if good { "ok  " } else { "FAIL" });
        pass &= good;
    };
    println!(
        "soak: {} requests in {:.0} s: {ok} 2xx, {client_errors} 4xx, {unavailable} 503, {other_server_errors} other 5xx, {no_answer} unanswered; by status {by_status:?}",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    );
    match fault_window {
        None => verdict(
            format!(
                "zero 5xx and zero unanswered ({unavailable} 503, {other_server_errors} other 5xx, {no_answer} unanswered)"
            ),
            unavailable + other_server_errors + no_answer == 0,
        ),
        Some((from, to)) => {
            let failed: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.status >= 500 || o.status == 0)
                .collect();
            let slowest = failed.iter().map(|o| o.latency).max().unwrap_or_default();
            let recovered_at = outcomes
                .iter()
                .filter(|o| o.at >= to && (200..300).contains(&o.status))
                .map(|o| o.at)
                .min();
            let failed_after = failed
                .iter()
                .filter(|o| recovered_at.is_some_and(|r| o.at > r + Duration::from_secs(5)))
                .count();
            println!(
                "soak: fault from {:.1} s to {:.1} s; {} requests failed, the slowest failure took {:.2} s",
                from.as_secs_f64(),
                to.as_secs_f64(),
                failed.len(),
                slowest.as_secs_f64()
            );
            verdict(
                format!(
                    "failures are 503s, not other 5xx ({other_server_errors} other 5xx, {no_answer} unanswered)"
                ),
                other_server_errors + no_answer == 0,
            );
            verdict(
                format!(
                    "failures are fast: the slowest took {:.2} s (the request timeout is 8 s)",
                    slowest.as_secs_f64()
                ),
                slowest <= Duration::from_secs(9),
            );
            let recovery = recovered_at.map(|r| r.saturating_sub(to));
            verdict(
                format!(
                    "recovered by itself: first 2xx {} after the fault, {failed_after} failures later than 5 s after that",
                    recovery.map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
                ),
                recovery.is_some_and(|d| d <= Duration::from_secs(10)) && failed_after == 0,
            );
        }
    }

    // What the database holds.
    let pool = database::connect(&url, 2).await?;
    let acks = std::mem::take(&mut *acks.lock().unwrap());
    let mut latest: HashMap<(Uuid, String), (i64, Value)> = HashMap::new();
    for (user, slug, version, data) in &acks.saves {
        let entry = latest
            .entry((*user, slug.clone()))
            .or_insert((-1, Value::Null));
        if *version > entry.0 {
            *entry = (*version, data.clone());
        }
    }
    let mut stored: HashMap<(Uuid, String), (i64, Value)> = HashMap::new();
    let mut checks = Invariants::default();
    for tool in registry.tools() {
        let s = tool.schema.quoted();
        let rows: Vec<(Uuid, Uuid, i32, Value, Option<Value>)> = db::query_as(sqlx::AssertSqlSafe(
            format!("select id, user_id, version, data, submitted_data from {s}.submissions"),
        ))
        .fetch_all(&pool)
        .await?;
        let outputs: Vec<(Uuid, String, Value)> = db::query_as(sqlx::AssertSqlSafe(format!(
            "select submission_id, field_id::text, field_value from {s}.field_outputs"
        )))
        .fetch_all(&pool)
        .await?;
        let owner: HashMap<Uuid, Uuid> = rows.iter().map(|r| (r.0, r.1)).collect();
        let mut by_submission: HashMap<Uuid, BTreeMap<String, Value>> = HashMap::new();
        for (submission, field, value) in outputs {
            if let Some(user) = owner.get(&submission) {
                checks.available.insert((*user, field.clone()));
            }
            by_submission
                .entry(submission)
                .or_default()
                .insert(field, value);
        }
        for (id, user, version, data, submitted) in &rows {
            stored.insert(
                (*user, tool.slug.clone()),
                (i64::from(*version), data.clone()),
            );
            let expected: BTreeMap<String, Value> = submitted
                .as_ref()
                .map(|d| submissions::extract_outputs(tool, d).into_iter().collect())
                .unwrap_or_default();
            if by_submission.remove(id).unwrap_or_default() != expected {
                checks.outputs_mismatch += 1;
            }
            if submitted.is_some() {
                checks.submitted.insert((*user, tool.slug.clone()));
            }
        }
        checks.orphan_outputs += by_submission.len();
    }
    let acknowledged = acks.saves.len();
    let mut lost = 0;
    for (user, slug, version, _) in &acks.saves {
        match stored.get(&(*user, slug.clone())) {
            Some((stored_version, _)) if stored_version >= version => {}
            _ => lost += 1,
        }
    }
    let mut stale = 0;
    for (key, (version, data)) in &latest {
        if let Some((stored_version, stored_data)) = stored.get(key)
            && stored_version == version
            && stored_data != data
        {
            stale += 1;
        }
    }
    verdict(
        format!(
            "acknowledged saves present: {acknowledged} acknowledged, {} found, {lost} lost, {stale} with other data than acknowledged",
            acknowledged - lost
        ),
        lost == 0 && stale == 0,
    );
    let synced: HashSet<String> =
        db::query_scalar::<String>("select lms_user_id from shared.users")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .collect();
    let missing_users = acks
        .new_users
        .iter()
        .filter(|l| !synced.contains(*l))
        .count();
    verdict(
        format!(
            "acknowledged new users present: {} acknowledged, {} found",
            acks.new_users.len(),
            acks.new_users.len() - missing_users
        ),
        missing_users == 0,
    );
    let duplicates: i64 = db::query_scalar(
        "select (select count(*) - count(distinct (user_id, tool_slug)) from shared.user_progress)
              + (select count(*) - count(distinct lms_user_id) from shared.users)
              + (select count(*) - count(distinct lower(email)) from shared.users)
              + (select count(*) from shared.users u
                 where (select count(*) from shared.user_progress p where p.user_id = u.id) <> $1)",
    )
    .bind(registry.tools().len() as i64)
    .fetch_one(&pool)
    .await?;
    verdict(
        format!("no duplicate or missing rows: {duplicates} found"),
        duplicates == 0,
    );
    verdict(
        format!(
            "every submission's field_outputs equal its submitted data's outputs: {} mismatches, {} orphan outputs",
            checks.outputs_mismatch, checks.orphan_outputs
        ),
        checks.outputs_mismatch == 0 && checks.orphan_outputs == 0,
    );
    let progress: Vec<(Uuid, String, String)> =
        db::query_as("select user_id, tool_slug::text, status::text from shared.user_progress")
            .fetch_all(&pool)
            .await?;
    let mut completed_without = 0;
    let mut unlocked_without = 0;
    for (user, slug, status) in &progress {
        let Some(tool) = registry.tool(slug) else {
            continue;
        };
        if status == "completed" && !checks.submitted.contains(&(*user, slug.clone())) {
            completed_without += 1;
        }
        if status != "locked"
            && tool
                .required_dependencies()
                .any(|d| !checks.available.contains(&(*user, d.field.clone())))
        {
            unlocked_without += 1;
        }
    }
    verdict(
        format!("every completed tool has its submission and outputs: {completed_without} without"),
        completed_without == 0,
    );
    verdict(
        format!("no tool open without its required fields: {unlocked_without} found"),
        unlocked_without == 0,
    );
    pool.close().await;

    // Memory: the first quarter after warm-up against the last quarter.
    let quarter = |from: f64, to: f64| {
        let values: Vec<f64> = samples
            .iter()
            .filter(|(t, _)| {
                let x = t.as_secs_f64() / deadline.as_secs_f64();
                x >= from && x < to
            })
            .map(|(_, m)| *m)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let peak = samples.iter().map(|(_, m)| *m).fold(0.0, f64::max);
    match (quarter(0.15, 0.35), quarter(0.75, 1.0)) {
        (Some(early), Some(late)) => {
            let growth = late - early;
            let line = format!(
                "server memory flat: {early:.1} MiB early, {late:.1} MiB late ({growth:+.1} MiB), peak {peak:.1} MiB, {} samples",
                samples.len()
            );
            if options.judge_memory {
                verdict(line, growth <= 4.0_f64.max(early * 0.1));
            } else {
                println!("  info {line} (judged on runs of 60 s or more)");
            }
        }
        _ => println!("  info too few memory samples ({})", samples.len()),
    }
    if pass {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("soak: the server's log is in {}", work.display());
    }
    Ok(pass)
}

#[derive(Default)]
struct Invariants {
    available: HashSet<(Uuid, String)>,
    submitted: HashSet<(Uuid, String)>,
    outputs_mismatch: usize,
    orphan_outputs: usize,
}
