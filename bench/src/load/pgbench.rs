//! pgbench: the anchor, running a route's own statements against PostgreSQL
//! with no service in between.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::call::{Bind, Call, Statement};
use super::wrk::Throughput;

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

/// Writes one pgbench script per call into `dir` and returns pgbench's
/// arguments for each (its script and its variables).
pub fn pgbench_args(calls: &[Call], dir: &Path) -> Result<Vec<Vec<String>>> {
    let mut all = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let mut args = Vec::new();
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
        all.push(args);
    }
    Ok(all)
}

/// Runs pgbench on the calls' scripts for `seconds` at `clients`, as the
/// server runs them: each connection prepares one call's statements, not
/// every call's. (pgbench names a prepared statement after its script, and
/// each client picks a script at random for each transaction, so with the 32
/// scripts in one pgbench every connection prepares 32 texts and plans each
/// afresh for its first executions, where the server's pool prepares the one
/// text once: 995 against 9,132 transactions a second for get-progress at
/// c=16.) So the calls are dealt out among `min(clients, calls)` pgbench
/// processes started together (call i to process i mod n: all calls are run
/// at every c, in the same mix as wrk's, and at c >= 32 each process has one),
/// the clients spread evenly over them. Each writes a per-transaction log (`--log`) under
/// `log_dir`; the throughput is the transactions that ended in the window
/// when all of them ran, over that window, and the latencies are every
/// logged transaction's.
pub fn run_pgbench_timed(
    pgbench: &Path,
    database_url: &str,
    calls: &[Vec<String>],
    clients: usize,
    seconds: u64,
    log_dir: &Path,
) -> Result<Throughput> {
    if calls.is_empty() {
        bail!("pgbench needs at least one call's script");
    }
    std::fs::create_dir_all(log_dir)?;
    remove_logs(log_dir)?;
    let mut children = Vec::new();
    for (i, (share, args)) in deal(calls, clients).into_iter().enumerate() {
        let prefix = log_dir.join(format!("pgbench_log_{i}"));
        children.push(
            pgbench_command(pgbench, database_url, &args, share, 1, seconds)
                .arg("--log")
                .arg(format!("--log-prefix={}", prefix.display()))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .with_context(|| format!("running {}", pgbench.display()))?,
        );
    }
    let mut summed = 0.0;
    for child in children {
        let output = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "pgbench failed: {text}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        summed += parse_pgbench(&text)?;
    }
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let path = entry?.path();
        if is_log(&path) {
            let log = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
            logs.push(parse_log(&log)?);
        }
    }
    remove_logs(log_dir)?;
    let mut together = together(&logs, clients, seconds)
        .with_context(|| format!("pgbench logged no transactions in {}", log_dir.display()))?;
    if together.per_second.is_nan() {
        // Started too far apart for a common window (64 connections opening
        // at once on a busy machine): the sum of each one's own throughput,
        // which overstates the anchor a little, if anything.
        together.per_second = summed;
    }
    Ok(together)
}

/// The pgbench processes for `clients` clients over `calls`: for each, its
/// clients and its calls' arguments. `min(clients, calls)` processes, call i
/// to process i mod n, the clients spread evenly.
pub fn deal(calls: &[Vec<String>], clients: usize) -> Vec<(usize, Vec<String>)> {
    let clients = clients.max(1);
    let processes = clients.min(calls.len());
    (0..processes)
        .map(|i| {
            let share = clients / processes + usize::from(i < clients % processes);
            let args = calls
                .iter()
                .skip(i)
                .step_by(processes)
                .flatten()
                .cloned()
                .collect();
            (share, args)
        })
        .collect()
}

/// One logged transaction: when it ended (µs since the epoch) and how long
/// it took (µs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Logged {
    pub ended_us: f64,
    pub latency_us: f64,
}

/// The throughput and latencies of logs written side by side by `clients`
/// clients in a run of `seconds`: throughput over the window every log
/// covers (from the latest first transaction to the earliest last one; NaN
/// when that is under half the run),
/// latencies over all transactions, corrected as wrk corrects its own
/// ([`wrk_corrected`]), so that the two p99s are the same measure.
pub fn together(logs: &[Vec<Logged>], clients: usize, seconds: u64) -> Option<Throughput> {
    let logs: Vec<&Vec<Logged>> = logs.iter().filter(|l| !l.is_empty()).collect();
    let first = |l: &Vec<Logged>| l.iter().map(|t| t.ended_us).fold(f64::INFINITY, f64::min);
    let last = |l: &Vec<Logged>| {
        l.iter()
            .map(|t| t.ended_us)
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let from = logs
        .iter()
        .map(|l| first(l))
        .fold(f64::NEG_INFINITY, f64::max);
    let to = logs.iter().map(|l| last(l)).fold(f64::INFINITY, f64::min);
    let all: Vec<Logged> = logs.iter().flat_map(|l| l.iter().copied()).collect();
    let interval_us = (seconds as f64 * 1e6 / (all.len() / clients.max(1)).max(1) as f64).floor();
    let (p50_ms, p99_ms) = percentiles_ms(wrk_corrected(
        all.iter().map(|t| t.latency_us).collect(),
        interval_us,
    ))?;
    let within = all
        .iter()
        .filter(|t| t.ended_us > from && t.ended_us <= to)
        .count();
    // A window shorter than half the run says too little: NaN, for the caller.
    let per_second = if to - from >= seconds as f64 * 1e6 / 2.0 {
        within as f64 / ((to - from) / 1e6)
    } else {
        f64::NAN
    };
    Some(Throughput {
        per_second,
        p50_ms,
        p99_ms,
    })
}

fn pgbench_command(
    pgbench: &Path,
    database_url: &str,
    script_args: &[String],
    clients: usize,
    threads: usize,
    seconds: u64,
) -> Command {
    let mut command = Command::new(pgbench);
    command
        .args(["-n", "-M", "prepared", "-c"])
        .arg(clients.to_string())
        .arg("-j")
        .arg(threads.to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .args(script_args)
        .arg(database_url);
    command
}

/// pgbench's log files: `<prefix>.<pid>` for a pgbench's first thread and
/// `<prefix>.<pid>.<thread>` for each other; the prefixes here are
/// `pgbench_log_<process>`.
fn is_log(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("pgbench_log_") && n.contains('.'))
}

fn remove_logs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if is_log(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The transactions in a pgbench per-transaction log. Each line is
/// `client_id transaction_no time script_no time_epoch time_us [...]`, where
/// `time` is the transaction's elapsed time in µs (or `skipped` or `failed`
/// for one that did not run to its end, pgbench 15: those are left out) and
/// `time_epoch`, `time_us` when it ended. pgbench 15 on this machine logs a
/// time of 0 for some transactions (400 of 3,596 in a 2 s run at c=1, ending
/// 230 µs apart); a client runs its transactions back to back, and where the
/// time is logged its end is within a few µs of the previous end plus the
/// time, so a 0 is taken as the time since the client's previous end (and
/// left out for a client's first transaction).
pub fn parse_log(log: &str) -> Result<Vec<Logged>> {
    let mut out = Vec::new();
    let mut last_end: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [client, _, time, _, epoch, micros, ..] = fields[..] else {
            bail!("a pgbench log line without its six fields: {line}");
        };
        let number = |field: &str| {
            field
                .parse::<f64>()
                .with_context(|| format!("a pgbench log line's number {field:?}: {line}"))
        };
        let ended_us = number(epoch)? * 1e6 + number(micros)?;
        let previous = last_end.insert(client, ended_us);
        if time == "skipped" || time == "failed" {
            continue;
        }
        let latency_us = match (number(time)?, previous) {
            (0.0, Some(previous)) => ended_us - previous,
            (0.0, None) => continue,
            (time, _) => time,
        };
        out.push(Logged {
            latency_us,
            ended_us,
        });
    }
    Ok(out)
}

/// Latencies (µs) with the samples wrk adds to its own before it reports
/// percentiles (wrk.c, `stats_correct`, with `interval` the run's time over
/// the requests per connection): for each latency of at least twice the
/// interval, one more at the latency less one interval, less two, and so on
/// while above the interval, the requests a stalled connection did not send
/// (coordinated omission). A stall thus weighs as much in pgbench's p99 as
/// in ours.
pub fn wrk_corrected(latencies_us: Vec<f64>, interval_us: f64) -> Vec<f64> {
    let mut out = latencies_us.clone();
    if interval_us < 1.0 {
        return out;
    }
    for latency in latencies_us.into_iter().map(f64::floor) {
        if latency < 2.0 * interval_us {
            continue;
        }
        let mut m = latency - interval_us;
        while m > interval_us {
            out.push(m);
            m -= interval_us;
        }
    }
    out
}

/// p50 and p99 (ms) of latencies in µs, by nearest rank; `None` for none.
pub fn percentiles_ms(mut latencies_us: Vec<f64>) -> Option<(f64, f64)> {
    if latencies_us.is_empty() {
        return None;
    }
    latencies_us.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let n = latencies_us.len();
        let i = ((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1;
        latencies_us[i] / 1000.0
    };
    Some((rank(50.0), rank(99.0)))
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

pub fn find_pgbench(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if Command::new("pgbench").arg("--version").output().is_ok() {
        return Ok("pgbench".into());
    }
    const NOT_FOUND: &str = "pgbench not found: install PostgreSQL or pass --pgbench";
    let Ok(versions) = std::fs::read_dir("/usr/lib/postgresql") else {
        bail!(NOT_FOUND);
    };
    let mut found: Vec<PathBuf> = versions
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().context(NOT_FOUND)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::call::Body;

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
        let args = pgbench_args(std::slice::from_ref(&call), &dir)
            .unwrap()
            .concat();
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
    fn pgbench_reports_are_read_and_failed_transactions_fail_the_run() {
        let report = "number of transactions actually processed: 100\nnumber of failed transactions: 0 (0.000%)\ntps = 1234.567890 (without initial connection time)\n";
        assert_eq!(parse_pgbench(report).unwrap(), 1234.56789);
        let failed = report.replace(": 0 (0.000%)", ": 3 (3.000%)");
        assert!(parse_pgbench(&failed).is_err());
    }

    #[test]
    fn pgbench_logs_give_each_transactions_time_and_end_and_skip_the_unfinished() {
        let log = "0 199 2241 0 1175850568 995598\n\
                   1 0 skipped 0 1175850569 1034\n\
                   0 200 2465 0 1175850568 998079 0\n\
                   3 7 failed 0 1175850570 1022\n";
        assert_eq!(
            parse_log(log).unwrap(),
            vec![
                Logged {
                    latency_us: 2241.0,
                    ended_us: 1175850568995598.0
                },
                Logged {
                    latency_us: 2465.0,
                    ended_us: 1175850568998079.0
                },
            ]
        );
        assert!(parse_log("0 1 2 0\n").is_err());
        // A time of 0 is the time since the same client's previous end; a
        // client's first is left out.
        let zeros = "0 1 0 0 10 100\n1 1 300 0 10 200\n0 2 250 0 10 350\n1 2 0 0 10 520\n";
        let latencies: Vec<f64> = parse_log(zeros)
            .unwrap()
            .iter()
            .map(|t| t.latency_us)
            .collect();
        assert_eq!(latencies, vec![300.0, 250.0, 320.0]);
    }

    #[test]
    fn side_by_side_logs_count_only_the_window_all_of_them_ran_in() {
        // One log from 0 to 2 s, one from 1 to 3 s, a transaction every ms,
        // each taking 1 ms; `slow`: the last 20 take 50 ms instead.
        let log = |from: u32, slow: bool| -> Vec<Logged> {
            (1..=2000)
                .map(|i| Logged {
                    ended_us: f64::from(from * 1_000_000 + i * 1000),
                    latency_us: if slow && i > 1980 { 50_000.0 } else { 1000.0 },
                })
                .collect()
        };
        // Two clients in a 1 s run (as far as the window's check goes): wrk's
        // interval would be 0.5 ms, and a 1 ms transaction adds no sample.
        let t = together(&[log(0, false), log(1, false)], 2, 1).unwrap();
        // Between 1.001 s and 2 s both ran: about 2 transactions a ms.
        assert!((t.per_second - 2000.0).abs() < 5.0, "{t}");
        assert_eq!((t.p50_ms, t.p99_ms), (1.0, 1.0));
        // 20 slow transactions of 4,000 are 0.5 %, but each stands for the
        // 48 a client would have sent meanwhile, as wrk counts its own.
        let slow = together(&[log(0, false), log(1, true)], 2, 1).unwrap();
        assert_eq!(slow.p50_ms, 1.0);
        assert!(slow.p99_ms > 40.0, "{slow}");
        // Logs that overlap by under half the run give no window.
        let apart = together(&[log(0, false), log(2, false)], 2, 4).unwrap();
        assert!(apart.per_second.is_nan(), "{apart}");
        assert!(together(&[vec![], vec![]], 2, 2).is_none());
    }

    #[test]
    fn every_call_is_dealt_to_a_pgbench_and_the_clients_spread_evenly() {
        let calls: Vec<Vec<String>> = (0..5).map(|i| vec![format!("call-{i}")]).collect();
        let one = deal(&calls, 1);
        assert_eq!(
            one,
            vec![(
                1,
                vec!["call-0", "call-1", "call-2", "call-3", "call-4"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )]
        );
        let two = deal(&calls, 2);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].1, ["call-0", "call-2", "call-4"]);
        assert_eq!(two[1].1, ["call-1", "call-3"]);
        let many = deal(&calls, 12);
        assert_eq!(many.len(), 5);
        assert_eq!(many.iter().map(|(c, _)| c).sum::<usize>(), 12);
        assert_eq!(
            many.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [3, 3, 2, 2, 2]
        );
        assert!(many.iter().all(|(_, args)| args.len() == 1));
    }

    #[test]
    fn a_stall_adds_the_samples_wrk_adds_for_the_requests_it_held_back() {
        // A 10 ms transaction where one is expected every 2 ms: 8, 6, 4.
        assert_eq!(
            wrk_corrected(vec![1000.0, 10_000.0], 2000.0),
            vec![1000.0, 10_000.0, 8000.0, 6000.0, 4000.0]
        );
        // Under twice the interval, nothing is added.
        assert_eq!(wrk_corrected(vec![3999.0], 2000.0), vec![3999.0]);
    }

    #[test]
    fn percentiles_are_taken_by_nearest_rank_in_milliseconds() {
        let latencies: Vec<f64> = (1..=1000).rev().map(|i| i as f64 * 10.0).collect();
        assert_eq!(percentiles_ms(latencies), Some((5.0, 9.9)));
        assert_eq!(percentiles_ms(vec![700.0]), Some((0.7, 0.7)));
        assert_eq!(percentiles_ms(vec![]), None);
    }

    #[test]
    fn every_threads_log_file_is_read_and_nothing_else() {
        assert!(is_log(Path::new("/x/pgbench_log_0.1234")));
        assert!(is_log(Path::new("/x/pgbench_log_12.1234.1")));
        assert!(!is_log(Path::new("/x/call-0.sql")));
        assert!(!is_log(Path::new("/x/pgbench_log_0")));
    }
}
