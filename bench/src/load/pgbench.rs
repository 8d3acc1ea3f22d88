//! pgbench: the anchor, running a route's own statements against PostgreSQL
//! with no service in between.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::call::{Bind, Call, Statement};

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
    fn pgbench_reports_are_read_and_failed_transactions_fail_the_run() {
        let report = "number of transactions actually processed: 100\nnumber of failed transactions: 0 (0.000%)\ntps = 1234.567890 (without initial connection time)\n";
        assert_eq!(parse_pgbench(report).unwrap(), 1234.56789);
        let failed = report.replace(": 0 (0.000%)", ": 3 (3.000%)");
        assert!(parse_pgbench(&failed).is_err());
    }
}
