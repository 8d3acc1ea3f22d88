//! Per-route load: wrk against the local server, and pgbench running the exact
//! statements the route executes, for the same users and tools, at the same
//! concurrency. The statements come from the `shared` crate itself (the same
//! constants and builders the handlers use), so the two cannot drift apart.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use shared::auth::TokenKeys;
use shared::registry::{Registry, Tool};
use shared::{db, progress, submissions, tool_sql};
use sqlx::PgPool;
use uuid::Uuid;

use crate::generate::Rng;

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
}

impl Route {
    pub const ALL: [Route; 3] = [Route::Progress, Route::Resolve, Route::Submit];

    pub fn name(self) -> &'static str {
        match self {
            Route::Progress => "get-progress",
            Route::Resolve => "resolve-dependencies",
            Route::Submit => "submit-tool",
        }
    }
}

/// One statement with its binds; `None` binds are SQL NULLs.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub binds: Vec<(Option<String>, &'static str)>,
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
    pub token: String,
    pub body: Option<String>,
    pub statements: Vec<Statement>,
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
) -> Result<Vec<Call>, String> {
    let users: Vec<(Uuid, Option<Uuid>)> = db::query_as(
        "select id, organization_id from shared.users where role = 'user' order by id",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| format!("reading users: {e}"))?;
    if users.is_empty() {
        return Err("the database has no users: run `fasttrack-bench generate` first".into());
    }
    let now = chrono::Utc::now().timestamp() as u64;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(calls);
    let mut attempts = 0;
    while out.len() < calls {
        attempts += 1;
        if attempts > calls * 50 {
            return Err(format!(
                "found only {} usable {} calls",
                out.len(),
                route.name()
            ));
        }
        let (user, organization) = users[rng.below(users.len() as u64) as usize];
        let tool = &registry.tools()[rng.below(registry.tools().len() as u64) as usize];
        let token = keys.issue(user, now).map_err(|e| e.to_string())?.0;
        let user_text = user.to_string();
        let call = match route {
            Route::Progress => Call {
                method: "GET",
                path: "/progress".into(),
                token,
                body: None,
                statements: vec![Statement {
                    sql: progress::PROGRESS_SQL.to_owned(),
                    binds: vec![(Some(user_text.clone()), "uuid"), (Some(user_text), "uuid")],
                }],
            },
            Route::Resolve => {
                let fields: Vec<&str> =
                    tool.dependencies.iter().map(|d| d.field.as_str()).collect();
                Call {
                    method: "GET",
                    path: format!("/tools/{}/dependencies", tool.slug),
                    token,
                    body: None,
                    statements: vec![Statement {
                        sql: tool_sql::resolve_dependencies(registry, tool)
                            .as_str()
                            .to_owned(),
                        binds: vec![
                            (Some(user_text.clone()), "uuid"),
                            (Some(user_text), "uuid"),
                            (Some(tool.slug.clone()), "text"),
                            (Some(pg_array(&fields)), "text[]"),
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
                .map_err(|e| format!("reading progress: {e}"))?;
                if status.as_deref() != Some("unlocked")
                    && status.as_deref() != Some("in_progress")
                    && status.as_deref() != Some("completed")
                {
                    continue;
                }
                submit_call(registry, tool, user, organization, token, &mut rng)
            }
        };
        out.push(call);
    }
    Ok(out)
}

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
    let user_text = Some(user.to_string());
    let slug = Some(tool.slug.clone());
    Call {
        method: "PUT",
        path: format!("/tools/{}/submission", tool.slug),
        token,
        body: Some(json!({"data": data, "status": "submitted"}).to_string()),
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: submissions::LOCK_PROGRESS_SQL.to_owned(),
                binds: vec![
                    (user_text.clone(), "uuid"),
                    (slug.clone(), "text"),
                    (None, "text"),
                    (None, "bytea"),
                ],
            },
            Statement {
                sql: tool_sql::save_submission(registry, tool)
                    .as_str()
                    .to_owned(),
                binds: vec![
                    (user_text, "uuid"),
                    (organization.map(|o| o.to_string()), "uuid"),
                    (Some(data.to_string()), "jsonb"),
                    (Some("submitted".into()), "text"),
                    (Some(pg_array(&fields)), "text[]"),
                    (Some(pg_array(&values)), "jsonb[]"),
                    (Some("100".into()), "int4"),
                    (None, "int4"),
                    (None, "text"),
                    (slug, "text"),
                    (Some(pg_array(&requirement_tools)), "text[]"),
                    (Some(pg_array(&requirement_fields)), "text[]"),
                    (Some(pg_array(&requirement_fields)), "text[]"),
                ],
            },
            Statement::plain("COMMIT"),
        ],
    }
}

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
                Some(value) => {
                    let name = format!("{prefix}_{n}");
                    let _ = write!(out, "(:{name})::{pg_type}");
                    if !variables.iter().any(|(v, _)| v == &name) {
                        variables.push((name, value.clone()));
                    }
                }
                None => {
                    let _ = write!(out, "null::{pg_type}");
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
pub fn wrk_script(calls: &[Call]) -> String {
    let mut out = String::from("local calls = {}\nlocal specs = {\n");
    for call in calls {
        let body = call
            .body
            .as_ref()
            .map_or("nil".to_owned(), |b| format!("[==[{b}]==]"));
        let _ = writeln!(
            out,
            "  {{ \"{}\", [==[{}]==], [==[{}]==], {} }},",
            call.method, call.path, call.token, body
        );
    }
    out.push_str(
        r#"}
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
init = function(args)
  for i, s in ipairs(specs) do
    local headers = { ["Authorization"] = "Bearer " .. s[3] }
    if s[4] then headers["Content-Type"] = "application/json" end
    calls[i] = wrk.format(s[1], s[2], headers, s[4])
  end
  math.randomseed(7919 * id)
end
request = function()
  return calls[math.random(#calls)]
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

/// Runs wrk for `seconds` at `connections` and reads its report. Any non-2xx
/// answer or socket error fails the run: the load must be valid requests.
pub fn run_wrk(
    port: u16,
    script: &Path,
    connections: usize,
    seconds: u64,
) -> Result<Throughput, String> {
    let threads = connections.clamp(1, 2);
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
        .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse_wrk(&text)
}

pub fn parse_wrk(text: &str) -> Result<Throughput, String> {
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
    {
        return Err(format!("the load got error answers: {}", line.trim()));
    }
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors")) {
        return Err(format!("the load had socket errors: {}", line.trim()));
    }
    let per_second = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| duration_ms(v.trim()))
            .ok_or_else(|| format!("no {p} latency in wrk's output: {text}"))
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
pub fn pgbench_args(calls: &[Call], dir: &Path) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let mut script = String::new();
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
        std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
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
) -> Result<f64, String> {
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
        .map_err(|e| format!("running {}: {e}", pgbench.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    parse_pgbench(&text)
}

pub fn parse_pgbench(text: &str) -> Result<f64, String> {
    if let Some(line) = text
        .lines()
        .find(|l| l.starts_with("number of failed transactions:") && !l.contains(": 0 "))
    {
        return Err(format!("pgbench transactions failed: {line}"));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no tps in pgbench's output: {text}"))
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
                        (n != 2).then(|| format!("v{n}")),
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
        assert!(parse_wrk(&failing).unwrap_err().contains("Non-2xx"));
    }

    #[test]
    fn pgbench_reports_are_read_and_failed_transactions_fail_the_run() {
        let report = "number of transactions actually processed: 100\nnumber of failed transactions: 0 (0.000%)\ntps = 1234.567890 (without initial connection time)\n";
        assert_eq!(parse_pgbench(report).unwrap(), 1234.56789);
        let failed = report.replace(": 0 (0.000%)", ": 3 (3.000%)");
        assert!(parse_pgbench(&failed).is_err());
    }
}
