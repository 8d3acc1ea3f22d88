//! The result file: the figures with the machine they were measured on, as
//! Markdown.

use std::path::Path;

use anyhow::{Context, Result};

use super::options::Options;
use crate::report::{self, Row, step};

/// Writes the result file `--out` names; a result file records a whole run,
/// so a partial one (`--only`) is not written.
pub fn write_if_whole(options: &Options, postgres: &str, rows: &[Row]) -> Result<()> {
    match &options.out {
        Some(out) if options.only.is_empty() => {
            write_result(out, options, postgres, rows)?;
            step(&format!("wrote {}", out.display()));
        }
        Some(out) => step(&format!(
            "a partial run (--only): {} not written",
            out.display()
        )),
        None => {}
    }
    Ok(())
}

fn write_result(out: &Path, options: &Options, postgres: &str, rows: &[Row]) -> Result<()> {
    let (passed, missed) = report::summary(rows);
    let mut text = format!(
        "# Benchmark results, {}\n\nProduced by `make bench` (`fasttrack-bench run`). Every ratio is against an anchor measured in the same run on the same machine. The load runs each route and pgbench on its SQL {} time(s) for {} s at each concurrency; a route's best throughput over the concurrencies is judged against its SQL's peak in pgbench over the same ones, and its p99 against pgbench's p99 (from pgbench's per-transaction log) at the same c. Other timings are medians of {} runs, cold starts medians of {} starts.\n\n## Machine\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        options.load_runs,
        options.seconds,
        options.runs,
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
