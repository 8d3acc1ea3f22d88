//! Per-route load: wrk against the local server, and pgbench running the exact
//! statements the route executes, for the same users and tools, at the same
//! concurrency. The statements come from the `shared` crate itself (the same
//! constants and builders the handlers use), so the two cannot drift apart.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::backend::{
    Registry, TokenKeys, Tool, db, progress, submissions, tool_sql, users, webhooks,
};
use crate::fixtures::{launch_body, webhook_signature};
use crate::rng::Rng;

/// One pgbench script per call, and wrk gets the same calls. pgbench prepares
/// every script on every connection, and PostgreSQL plans a prepared statement
/// afresh for its first five executions; with many scripts per connection the
/// anchor would be all planning, a weaker anchor than the database can be (the
/// service keeps one prepared statement per SQL text per connection). 32 calls
/// keep each script well past five executions per connection at concurrency 16.
pub const CALLS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Progress,
    Resolve,
    Submit,
    /// sync-user's `POST /webhooks/learnworlds`: a userUpdated delivery for a
    /// participant, each one a new body (LearnWorlds' deliveries differ).
    Webhook,
    /// sync-user's `POST /sessions`: a participant opening a tool from
    /// LearnWorlds, each launch signed once and used once.
    Launch,
}

impl Route {
    pub const ALL: [Route; 5] = [
        Route::Progress,
        Route::Resolve,
        Route::Submit,
        Route::Webhook,
        Route::Launch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Route::Progress => "get-progress",
            Route::Resolve => "resolve-dependencies",
            Route::Submit => "submit-tool",
            Route::Webhook => "sync-user webhook",
            Route::Launch => "sync-user session launch",
        }
    }

    /// A name for files.
    pub fn slug(self) -> String {
        self.name().replace(' ', "-")
    }
}

/// A bind's value in the pgbench script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Null,
    Value(String),
    /// A value no other request has (a delivery's digest, a launch's
    /// signature): a random number drawn for each pgbench transaction.
    Unique,
}

impl From<Option<String>> for Bind {
    fn from(value: Option<String>) -> Self {
        value.map_or(Bind::Null, Bind::Value)
    }
}

/// One statement with its binds, each with the type sqlx sends it as.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<(Bind, &'static str)>,
}

impl Statement {
    fn plain(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            binds: vec![],
        }
    }
}

/// One request of the workload, and the statements it makes the database run.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub statements: Vec<Statement>,
}

/// What wrk sends as a call's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    None,
    Fixed(String),
    /// Each request replaces `{{N}}` with a text no other request of the
    /// harness has.
    Numbered(String),
    /// Each request takes the next line of its wrk thread's launch file
    /// ([`launch_files`]): a signed launch is good for one session.
    Launch,
}

impl Body {
    pub fn fixed(self) -> Option<String> {
        match self {
            Body::Fixed(body) => Some(body),
            _ => None,
        }
    }
}

fn bearer(token: String) -> Vec<(&'static str, String)> {
    vec![("Authorization", format!("Bearer {token}"))]
}

/// A PostgreSQL array literal of text elements.
pub fn pg_array<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| {
            let escaped = s.as_ref().replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{escaped}\"")
        })
        .collect();
    format!("{{{}}}", quoted.join(","))
}

/// `calls` requests of `route` by users of the generated data, chosen with
/// `seed`. Submits go only to tools the user may open (not locked), with every
/// field filled, as a participant submitting would.
pub async fn sample(
    pool: &PgPool,
    registry: &Registry,
    keys: &TokenKeys,
    route: Route,
    calls: usize,
    seed: u64,
) -> Result<Vec<Call>> {
    if matches!(route, Route::Webhook | Route::Launch) {
        return sync_calls(pool, registry, route, calls, seed).await;
    }
    let users: Vec<(Uuid, Option<Uuid>)> = db::query_as(
        "select id, organization_id from shared.users where role = 'user' order by id",
    )
    .fetch_all(pool)
    .await
    .context("reading users")?;
    if users.is_empty() {
        bail!("the database has no users: run `fasttrack-bench generate` first");
    }
    let now = chrono::Utc::now().timestamp() as u64;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(calls);
    let mut attempts = 0;
    while out.len() < calls {
        attempts += 1;
        if attempts > calls * 50 {
            bail!("found only {} usable {} calls", out.len(), route.name());
        }
        let (user, organization) = users[rng.below(users.len() as u64) as usize];
        let tool = &registry.tools()[rng.below(registry.tools().len() as u64) as usize];
        let token = keys.issue(user, now)?.0;
        let user_text = user.to_string();
        let call = match route {
            Route::Progress => Call {
                method: "GET",
                path: "/progress".into(),
                headers: bearer(token),
                body: Body::None,
                statements: vec![progress_statement(user)],
            },
            Route::Resolve => {
                let fields: Vec<&str> =
                    tool.dependencies.iter().map(|d| d.field.as_str()).collect();
                Call {
                    method: "GET",
                    path: format!("/tools/{}/dependencies", tool.slug),
                    headers: bearer(token),
                    body: Body::None,
                    statements: vec![Statement {
                        sql: tool_sql::resolve_dependencies(registry, tool)
                            .as_str()
                            .to_owned(),
                        binds: vec![
                            (Bind::Value(user_text.clone()), "uuid"),
                            (Bind::Value(user_text), "uuid"),
                            (Bind::Value(tool.slug.clone()), "text"),
                            (Bind::Value(pg_array(&fields)), "text[]"),
                        ],
                    }],
                }
            }
            Route::Submit => {
                let status: Option<String> = db::query_scalar(
                    "select status::text from shared.user_progress where user_id = $1 and tool_slug = $2",
                )
                .bind(user)
                .bind(&tool.slug)
                .fetch_optional(pool)
                .await
                .context("reading progress")?;
                if status.as_deref() != Some("unlocked")
                    && status.as_deref() != Some("in_progress")
                    && status.as_deref() != Some("completed")
                {
                    continue;
                }
                submit_call(registry, tool, user, organization, token, &mut rng)
            }
            Route::Webhook | Route::Launch => unreachable!("sampled by sync_calls"),
        };
        out.push(call);
    }
    Ok(out)
}

/// get-progress's read of `user`'s own progress.
fn progress_statement(user: Uuid) -> Statement {
    Statement {
        sql: progress::PROGRESS_SQL.to_owned(),
        binds: vec![
            (Bind::Value(user.to_string()), "uuid"),
            (Bind::Value(user.to_string()), "uuid"),
        ],
    }
}

/// A generated participant as LearnWorlds knows them.
#[derive(sqlx::FromRow)]
struct Participant {
    id: Uuid,
    lms_user_id: String,
    email: String,
    full_name: String,
    organization_id: Uuid,
    organization_slug: String,
    organization_name: String,
}

const PARTICIPANTS_SQL: &str = "select u.id, u.lms_user_id::text, u.email::text, u.full_name::text,
        o.id as organization_id, o.slug::text as organization_slug, o.name::text as organization_name
    from shared.users u join shared.organizations o on o.id = u.organization_id
    where u.role = 'user' order by u.id offset $1 limit $2";

/// sync-user's calls for `calls` participants chosen with `seed`: the
/// statements of a webhook for an existing participant (`webhooks::receive`),
/// or of their session launch (`App::create_session`: the launch and the
/// sync in one transaction, then their progress).
async fn sync_calls(
    pool: &PgPool,
    registry: &Registry,
    route: Route,
    calls: usize,
    seed: u64,
) -> Result<Vec<Call>> {
    let participants: Vec<Participant> = db::query_as(PARTICIPANTS_SQL)
        .bind(0_i64)
        .bind(None::<i64>)
        .fetch_all(pool)
        .await
        .context("reading participants")?;
    if participants.is_empty() {
        bail!("the database has no participants: run `fasttrack-bench generate` first");
    }
    let (slugs, statuses) = users::initial_progress(registry);
    let (slugs, statuses) = (pg_array(&slugs), pg_array(&statuses));
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        let p = &participants[rng.below(participants.len() as u64) as usize];
        let sync = |organization: Bind, login: bool| Statement {
            sql: users::SYNC_SQL.to_owned(),
            binds: vec![
                (Bind::Value(p.lms_user_id.clone()), "text"),
                (Bind::Value(p.email.clone()), "text"),
                (Bind::Value(p.full_name.clone()), "text"),
                (organization, "uuid"),
                (Bind::Value(slugs.clone()), "text[]"),
                (Bind::Value(statuses.clone()), "text[]"),
                (Bind::Value(login.to_string()), "bool"),
                // A launch keeps the organization; the webhook's tags name it.
                (Bind::Value(login.to_string()), "bool"),
            ],
        };
        out.push(match route {
            Route::Webhook => {
                let body = json!({
                    "version": 2, "type": "userUpdated", "trigger": "user_updated",
                    "school_id": "bench-school",
                    "data": {"user": {
                        "id": p.lms_user_id, "email": p.email, "username": "u{{N}}",
                        "first_name": p.full_name, "tags": [format!("org:{}", p.organization_slug)],
                        "fields": {"company": p.organization_name},
                    }},
                })
                .to_string();
                let payload = body.replace("{{N}}", "0");
                Call {
                    method: "POST",
                    path: "/webhooks/learnworlds".into(),
                    headers: vec![webhook_signature()],
                    body: Body::Numbered(body),
                    statements: vec![
                        Statement::plain("BEGIN"),
                        Statement {
                            sql: webhooks::RECORD_USER_DELIVERY_SQL.to_owned(),
                            binds: vec![
                                (Bind::Unique, "bytea"),
                                (Bind::Value("userUpdated".into()), "text"),
                                (Bind::Value("user_updated".into()), "text"),
                                (Bind::Value(p.lms_user_id.clone()), "text"),
                                (Bind::Value("synced".into()), "text"),
                                (Bind::Value(payload), "jsonb"),
                            ],
                        },
                        Statement {
                            sql: users::ORGANIZATION_ID_SQL.to_owned(),
                            binds: vec![(Bind::Value(p.organization_slug.clone()), "text")],
                        },
                        sync(Bind::Value(p.organization_id.to_string()), false),
                        Statement::plain("COMMIT"),
                    ],
                }
            }
            Route::Launch => Call {
                method: "POST",
                path: "/sessions".into(),
                headers: vec![],
                body: Body::Launch,
                statements: vec![
                    Statement::plain("BEGIN"),
                    Statement {
                        sql: users::CLAIM_LAUNCH_SQL.to_owned(),
                        binds: vec![
                            (Bind::Unique, "text"),
                            (Bind::Value(p.lms_user_id.clone()), "text"),
                        ],
                    },
                    sync(Bind::Null, true),
                    progress_statement(p.id),
                    Statement::plain("COMMIT"),
                ],
            },
            _ => unreachable!("sampled by sample"),
        });
    }
    Ok(out)
}

/// Signed launches for one wrk run, `per_thread` for each of `threads` wrk
/// threads, one file each (`launches-<thread>.txt`, a launch body a line).
/// Each participant signs [`LAUNCH_TIMESTAMPS`] launches, one per second
/// around `now`, all within the server's 300 s limit for the next minute;
/// `run` picks participants no earlier run used, as a launch is refused a
/// second time.
pub async fn launch_files(
    pool: &PgPool,
    dir: &Path,
    run: usize,
    threads: usize,
    per_thread: usize,
    now: i64,
) -> Result<()> {
    let needed = (threads * per_thread).div_ceil(LAUNCH_TIMESTAMPS);
    let participants: Vec<Participant> = db::query_as(PARTICIPANTS_SQL)
        .bind((run * needed) as i64)
        .bind(needed as i64)
        .fetch_all(pool)
        .await
        .context("reading participants")?;
    if participants.len() < needed {
        bail!(
            "session launches need {needed} participants a run that no earlier run used; \
             generate more users"
        );
    }
    let mut launches = Vec::with_capacity(threads * per_thread);
    'fill: for p in &participants {
        for offset in 0..LAUNCH_TIMESTAMPS as i64 {
            if launches.len() == threads * per_thread {
                break 'fill;
            }
            launches.push(launch_body(
                &p.lms_user_id,
                &p.email,
                &p.full_name,
                now - 60 + offset,
            ));
        }
    }
    // In a random order, so that concurrent launches are of different
    // participants, as in a school, and do not queue for one user's row.
    let mut rng = Rng::new(0x5e55_1075 ^ run as u64);
    for i in (1..launches.len()).rev() {
        launches.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut files = vec![String::with_capacity(per_thread * 320); threads];
    for (i, launch) in launches.iter().enumerate() {
        let _ = writeln!(files[i % threads], "{launch}");
    }
    for (i, text) in files.iter().enumerate() {
        let path = dir.join(format!("launches-{}.txt", i + 1));
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// Launches each participant signs for a run (see [`launch_files`]).
pub const LAUNCH_TIMESTAMPS: usize = 300;

/// A full submit of `tool`, and the four statements a save of an open tool
/// runs (see `shared::submissions::save`).
pub fn submit_call(
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
    organization: Option<Uuid>,
    token: String,
    rng: &mut Rng,
) -> Call {
    let mut data = serde_json::Map::new();
    for output in &tool.outputs {
        let words = 4 + rng.below(20) as usize;
        let text: Vec<&str> = (0..words)
            .map(|_| {
                ["plan", "team", "cash", "growth", "customers", "focus"][rng.below(6) as usize]
            })
            .collect();
        data.insert(output.key.clone(), Value::String(text.join(" ")));
    }
    let data = Value::Object(data);
    let outputs = submissions::extract_outputs(tool, &data);
    let fields: Vec<String> = outputs.keys().cloned().collect();
    let values: Vec<String> = outputs.values().map(Value::to_string).collect();
    let (mut requirement_tools, mut requirement_fields) = (Vec::new(), Vec::new());
    for dependent in registry.dependents(tool) {
        for dep in dependent.required_dependencies() {
            requirement_tools.push(dependent.slug.clone());
            requirement_fields.push(dep.field.clone());
        }
    }
    let user_text = Bind::Value(user.to_string());
    let slug = Bind::Value(tool.slug.clone());
    Call {
        method: "PUT",
        path: format!("/tools/{}/submission", tool.slug),
        headers: bearer(token),
        body: Body::Fixed(json!({"data": data, "status": "submitted"}).to_string()),
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: submissions::LOCK_PROGRESS_SQL.to_owned(),
                binds: vec![
                    (user_text.clone(), "uuid"),
                    (slug.clone(), "text"),
                    (Bind::Null, "text"),
                    (Bind::Null, "bytea"),
                ],
            },
            Statement {
                sql: tool_sql::save_submission(registry, tool)
                    .as_str()
                    .to_owned(),
                binds: vec![
                    (user_text, "uuid"),
                    (organization.map(|o| o.to_string()).into(), "uuid"),
                    (Bind::Value(data.to_string()), "jsonb"),
                    (Bind::Value("submitted".into()), "text"),
                    (Bind::Value(pg_array(&fields)), "text[]"),
                    (Bind::Value(pg_array(&values)), "jsonb[]"),
                    (Bind::Value("100".into()), "int4"),
                    (Bind::Null, "int4"),
                    (Bind::Null, "text"),
                    (slug, "text"),
                    (Bind::Value(pg_array(&requirement_tools)), "text[]"),
                    (Bind::Value(pg_array(&requirement_fields)), "text[]"),
                    (Bind::Value(pg_array(&requirement_fields)), "text[]"),
                ],
            },
            Statement::plain("COMMIT"),
        ],
    }
}

/// The pgbench variable a script draws afresh for each transaction, for
/// [`Bind::Unique`].
const UNIQUE: &str = "unique";

/// The statement with each `$n` replaced by a pgbench variable (a bind
/// parameter under `-M prepared`) typed as sqlx types it, or a typed NULL.
/// Returns the text and the variables to define with `-D`.
pub fn pgbench_statement(statement: &Statement, prefix: &str) -> (String, Vec<(String, String)>) {
    let mut out = String::with_capacity(statement.sql.len());
    let mut variables = Vec::new();
    let mut chars = statement.sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            let n: usize = digits.parse().expect("digits");
            let (value, pg_type) = &statement.binds[n - 1];
            match value {
                Bind::Value(value) => {
                    let name = format!("{prefix}_{n}");
                    let _ = write!(out, "(:{name})::{pg_type}");
                    if !variables.iter().any(|(v, _)| v == &name) {
                        variables.push((name, value.clone()));
                    }
                }
                Bind::Null => {
                    let _ = write!(out, "null::{pg_type}");
                }
                Bind::Unique => {
                    let _ = write!(out, "(:{UNIQUE})::{pg_type}");
                }
            }
        } else {
            out.push(c);
        }
    }
    // pgbench ends a command at a newline unless it ends with `;`: one line
    // each, so `--` comments (none of our statements has `--` in a literal) go.
    let one_line: String = out
        .lines()
        .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    (one_line, variables)
}

/// The wrk script that sends the calls, one chosen at random per request.
/// `tag` makes the numbered bodies of this run unlike any other run's;
/// `launches` is the directory of this run's launch files.
pub fn wrk_script(calls: &[Call], tag: &str, launches: &Path) -> String {
    let mut out = String::from("local specs = {\n");
    for call in calls {
        let mut headers: String = call
            .headers
            .iter()
            .map(|(name, value)| format!("[ [==[{name}]==] ] = [==[{value}]==], "))
            .collect();
        if call.body != Body::None {
            headers.push_str(r#"["Content-Type"] = "application/json", "#);
        }
        let (body, kind) = match &call.body {
            Body::None => ("nil".to_owned(), "fixed"),
            Body::Fixed(body) => (format!("[==[{body}]==]"), "fixed"),
            Body::Numbered(body) => (format!("[==[{body}]==]"), "numbered"),
            Body::Launch => ("nil".to_owned(), "launch"),
        };
        let _ = writeln!(
            out,
            "  {{ \"{}\", [==[{}]==], {{ {headers}}}, {body}, \"{kind}\" }},",
            call.method, call.path
        );
    }
    let _ = writeln!(
        out,
        "}}\nlocal tag = [==[{tag}]==]\nlocal launch_dir = [==[{}]==]",
        launches.display()
    );
    out.push_str(
        r#"local calls, launches, sent = {}, {}, 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
init = function(args)
  for i, s in ipairs(specs) do
    if s[5] == "fixed" then calls[i] = wrk.format(s[1], s[2], s[3], s[4]) end
    if s[5] == "launch" and #launches == 0 then
      for line in io.lines(launch_dir .. "/launches-" .. id .. ".txt") do
        launches[#launches + 1] = line
      end
    end
  end
  math.randomseed(7919 * id)
end
request = function()
  local i = math.random(#specs)
  local s = specs[i]
  if s[5] == "fixed" then return calls[i] end
  sent = sent + 1
  if s[5] == "numbered" then
    local body = string.gsub(s[4], "{{N}}", tag .. "-" .. id .. "-" .. sent)
    return wrk.format(s[1], s[2], s[3], body)
  end
  -- A launch used up: the server refuses the replay, and the run fails.
  local body = launches[sent] or launches[1]
  return wrk.format(s[1], s[2], s[3], body)
end
"#,
    );
    out
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// wrk's threads at `connections`: the machine's two cores.
pub fn wrk_threads(connections: usize) -> usize {
    connections.clamp(1, 2)
}

/// Runs wrk for `seconds` at `connections` and reads its report. Any non-2xx
/// answer or socket error fails the run: the load must be valid requests.
pub fn run_wrk(port: u16, script: &Path, connections: usize, seconds: u64) -> Result<Throughput> {
    let threads = wrk_threads(connections);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text)
}

pub fn parse_wrk(text: &str) -> Result<Throughput> {
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
    {
        bail!("the load got error answers: {}", line.trim());
    }
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors")) {
        bail!("the load had socket errors: {}", line.trim());
    }
    let per_second = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| duration_ms(v.trim()))
            .with_context(|| format!("no {p} latency in wrk's output: {text}"))
    };
    Ok(Throughput {
        per_second,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
    })
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

/// Writes one pgbench script per call into `dir` and returns pgbench's
/// arguments for them (scripts and variables).
pub fn pgbench_args(calls: &[Call], dir: &Path) -> Result<Vec<String>> {
    let mut args = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let mut script = String::new();
        if call
            .statements
            .iter()
            .any(|s| s.binds.iter().any(|(b, _)| *b == Bind::Unique))
        {
            let _ = writeln!(script, "\\set {UNIQUE} random(1, 4000000000000000000)");
        }
        for (j, statement) in call.statements.iter().enumerate() {
            let (text, variables) = pgbench_statement(statement, &format!("c{i}s{j}"));
            script.push_str(&text);
            script.push_str(";\n");
            for (name, value) in variables {
                args.push("-D".into());
                args.push(format!("{name}={value}"));
            }
        }
        let path = dir.join(format!("call-{i}.sql"));
        std::fs::write(&path, script).with_context(|| path.display().to_string())?;
        args.push("-f".into());
        args.push(path.display().to_string());
    }
    Ok(args)
}

/// Runs pgbench with the scripts for `seconds` at `clients`; returns
/// transactions (one per call) per second.
pub fn run_pgbench(
    pgbench: &Path,
    database_url: &str,
    script_args: &[String],
    clients: usize,
    seconds: u64,
) -> Result<f64> {
    let output = Command::new(pgbench)
        .args(["-n", "-M", "prepared", "-c"])
        .arg(clients.to_string())
        .arg("-j")
        .arg(clients.clamp(1, 2).to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .args(script_args)
        .arg(database_url)
        .output()
        .with_context(|| format!("running {}", pgbench.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_pgbench(&text)
}

pub fn parse_pgbench(text: &str) -> Result<f64> {
    if let Some(line) = text
        .lines()
        .find(|l| l.starts_with("number of failed transactions:") && !l.contains(": 0 "))
    {
        bail!("pgbench transactions failed: {line}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no tps in pgbench's output: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_become_typed_pgbench_variables_and_nulls_stay_typed_nulls() {
        let statement = Statement {
            sql: "select $1, $10, -- a comment\n $1 where $2::text is null".into(),
            binds: (1..=10)
                .map(|n| {
                    (
                        (n != 2).then(|| format!("v{n}")).into(),
                        if n == 10 { "jsonb" } else { "uuid" },
                    )
                })
                .collect(),
        };
        let (text, variables) = pgbench_statement(&statement, "c0");
        assert_eq!(
            text,
            "select (:c0_1)::uuid, (:c0_10)::jsonb, (:c0_1)::uuid where null::uuid::text is null"
        );
        assert_eq!(
            variables,
            vec![
                ("c0_1".to_owned(), "v1".to_owned()),
                ("c0_10".to_owned(), "v10".to_owned())
            ]
        );
    }

    #[test]
    fn the_real_save_statements_become_single_lines_without_comments() {
        let registry = Registry::embedded();
        let tool = registry.tool("woop").unwrap();
        let call = submit_call(
            registry,
            tool,
            Uuid::nil(),
            None,
            String::new(),
            &mut Rng::new(1),
        );
        for (i, statement) in call.statements.iter().enumerate() {
            let (text, _) = pgbench_statement(statement, &format!("s{i}"));
            assert!(!text.contains("--") && !text.contains('\n'), "{text}");
            assert!(!text.contains('$'), "every bind became a variable: {text}");
        }
    }

    #[test]
    fn a_unique_bind_is_drawn_afresh_in_each_pgbench_transaction() {
        let dir = std::env::temp_dir().join(format!("bench-unique-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let call = Call {
            method: "POST",
            path: "/sessions".into(),
            headers: vec![],
            body: Body::Launch,
            statements: vec![Statement {
                sql: "insert into t values ($1, $2)".into(),
                binds: vec![(Bind::Unique, "bytea"), (Bind::Value("x".into()), "text")],
            }],
        };
        let args = pgbench_args(std::slice::from_ref(&call), &dir).unwrap();
        let script = std::fs::read_to_string(dir.join("call-0.sql")).unwrap();
        assert_eq!(
            script,
            "\\set unique random(1, 4000000000000000000)\n\
             insert into t values ((:unique)::bytea, (:c0s0_2)::text);\n"
        );
        assert!(args.contains(&"c0s0_2=x".to_owned()), "{args:?}");

        // Without a unique bind, no variable is drawn.
        let mut fixed = call;
        fixed.statements[0].binds[0].0 = Bind::Null;
        pgbench_args(&[fixed], &dir).unwrap();
        let script = std::fs::read_to_string(dir.join("call-0.sql")).unwrap();
        assert!(!script.contains("\\set"), "{script}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_wrk_script_sends_fixed_numbered_and_launch_bodies_as_each_call_says() {
        let call = |path: &str, body: Body| Call {
            method: "POST",
            path: path.into(),
            headers: vec![("X-Test", "yes".into())],
            body,
            statements: vec![],
        };
        let script = wrk_script(
            &[
                call("/a", Body::None),
                call("/b", Body::Fixed("{}".into())),
                call("/c", Body::Numbered(r#"{"n": "{{N}}"}"#.into())),
                call("/d", Body::Launch),
            ],
            "run-7",
            Path::new("/tmp/launch-dir"),
        );
        let specs: Vec<&str> = script.lines().filter(|l| l.starts_with("  { ")).collect();
        assert_eq!(specs.len(), 4, "{script}");
        assert!(specs[0].ends_with("nil, \"fixed\" },") && !specs[0].contains("Content-Type"));
        assert!(specs[1].contains(r#"["Content-Type"] = "application/json""#));
        assert!(specs[2].ends_with(r#"[==[{"n": "{{N}}"}]==], "numbered" },"#));
        assert!(specs[3].ends_with("nil, \"launch\" },"));
        assert!(
            specs
                .iter()
                .all(|s| s.contains("[ [==[X-Test]==] ] = [==[yes]==]"))
        );
        assert!(script.contains("local tag = [==[run-7]==]"));
        assert!(script.contains("local launch_dir = [==[/tmp/launch-dir]==]"));
    }

    #[test]
    fn array_literals_escape_quotes_and_backslashes() {
        assert_eq!(pg_array(&["a", "b\"c", "d\\e"]), r#"{"a","b\"c","d\\e"}"#);
        assert_eq!(pg_array::<&str>(&[]), "{}");
    }

    #[test]
    fn wrk_reports_are_read_and_error_answers_fail_the_run() {
        let report = "Running 5s test @ http://127.0.0.1:3000
  2 threads and 16 connections
  Latency Distribution
     50%    1.50ms
     75%    2.00ms
     90%    3.00ms
     99%  850.00us
  20000 requests in 5.00s, 3.00MB read
Requests/sec:   4000.12
Transfer/sec:    600.00KB
";
        let t = parse_wrk(report).unwrap();
        assert_eq!(t.per_second, 4000.12);
        assert_eq!(t.p50_ms, 1.5);
        assert_eq!(t.p99_ms, 0.85);
        let failing = report.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        assert!(
            parse_wrk(&failing)
                .unwrap_err()
                .to_string()
                .contains("Non-2xx")
        );
    }

    #[test]
    fn pgbench_reports_are_read_and_failed_transactions_fail_the_run() {
        let report = "number of transactions actually processed: 100\nnumber of failed transactions: 0 (0.000%)\ntps = 1234.567890 (without initial connection time)\n";
        assert_eq!(parse_pgbench(report).unwrap(), 1234.56789);
        let failed = report.replace(": 0 (0.000%)", ": 3 (3.000%)");
        assert!(parse_pgbench(&failed).is_err());
    }
}
