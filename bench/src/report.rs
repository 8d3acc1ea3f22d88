//! The harness's output: one row per figure, with the anchor it is compared to
//! and the budget it must meet, printed as a table and written as Markdown with
//! the machine it ran on.

use std::fmt::Write;
use std::process::Command;

/// What a figure must be to pass, if it has a budget at all.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Informational: reported, judged by nobody.
    None,
    /// The ratio (value ÷ anchor) must be at least this.
    RatioAtLeast(f64),
    /// The ratio (value ÷ anchor) must be at most this.
    RatioAtMost(f64),
    /// The value itself must be at most this.
    ValueAtMost(f64),
    /// The value itself must equal this.
    ValueEquals(f64),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    pub anchor: Option<(String, f64)>,
    pub budget: Budget,
}

impl Row {
    pub fn info(figure: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            figure: figure.into(),
            value,
            unit,
            anchor: None,
            budget: Budget::None,
        }
    }

    pub fn against(mut self, anchor: impl Into<String>, anchor_value: f64) -> Self {
        self.anchor = Some((anchor.into(), anchor_value));
        self
    }

    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    pub fn ratio(&self) -> Option<f64> {
        self.anchor
            .as_ref()
            .filter(|(_, a)| *a != 0.0)
            .map(|(_, a)| self.value / a)
    }

    /// `None` for informational rows.
    pub fn passed(&self) -> Option<bool> {
        let ratio = self.ratio();
        match self.budget {
            Budget::None => None,
            Budget::RatioAtLeast(min) => Some(ratio.is_some_and(|r| r >= min)),
            Budget::RatioAtMost(max) => Some(ratio.is_some_and(|r| r <= max)),
            Budget::ValueAtMost(max) => Some(self.value <= max),
            Budget::ValueEquals(want) => Some((self.value - want).abs() < 1e-9),
        }
    }

    /// Two decimals, or more (up to four) when two would put the ratio on
    /// the other side of its budget's bound: 0.4959 against `>= 0.5` reads
    /// 0.496, not 0.50.
    fn ratio_text(&self, ratio: f64) -> String {
        let bound = match self.budget {
            Budget::RatioAtLeast(bound) | Budget::RatioAtMost(bound) => bound,
            _ => return format!("{ratio:.2}"),
        };
        (2..=4)
            .map(|places| format!("{ratio:.places$}"))
            .find(|text| {
                let shown: f64 = text.parse().expect("a formatted number");
                (shown >= bound) == (ratio >= bound) && (shown <= bound) == (ratio <= bound)
            })
            .unwrap_or_else(|| format!("{ratio:.4}"))
    }

    fn cells(&self) -> [String; 6] {
        let budget = match self.budget {
            Budget::None => "-".to_owned(),
            Budget::RatioAtLeast(min) => format!("ratio >= {min}"),
            Budget::RatioAtMost(max) => format!("ratio <= {max}"),
            Budget::ValueAtMost(max) => format!("<= {} {}", number(max), self.unit),
            Budget::ValueEquals(want) => format!("= {}", number(want)),
        };
        [
            self.figure.clone(),
            format!("{} {}", number(self.value), self.unit)
                .trim()
                .to_owned(),
            self.anchor.as_ref().map_or("-".to_owned(), |(name, v)| {
                format!("{} ({name})", number(*v))
            }),
            self.ratio().map_or("-".to_owned(), |r| self.ratio_text(r)),
            budget,
            match self.passed() {
                None => "info".to_owned(),
                Some(true) => "pass".to_owned(),
                Some(false) => "MISS".to_owned(),
            },
        ]
    }
}

fn number(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

const HEADER: [&str; 6] = ["figure", "value", "anchor", "ratio", "budget", "verdict"];

/// The rows as an aligned plain-text table.
pub fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADER.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String]| {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut out, &HEADER.map(str::to_owned));
    line(&mut out, &widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(&mut out, row);
    }
    out
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(6));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.cells().join(" | "));
    }
    out
}

/// The median of repeated measurements (NaN for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[values.len() / 2]
}

/// A line on stderr saying what the harness does next, and when: minutes and
/// seconds since its first step, so that a run shows where its time went.
pub fn step(message: &str) {
    static FIRST: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let at = FIRST
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs();
    eprintln!(
        "\x1b[1m==>\x1b[0m [{:02}:{:02}] {message}",
        at / 60,
        at % 60
    );
}

pub fn summary(rows: &[Row]) -> (usize, usize) {
    let judged: Vec<bool> = rows.iter().filter_map(Row::passed).collect();
    (
        judged.iter().filter(|p| **p).count(),
        judged.iter().filter(|p| !**p).count(),
    )
}

/// What the figures were measured on.
pub fn machine(postgres_version: &str) -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or("unknown".into(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1048576.0)
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let output = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    vec![
        ("cpu", format!("{cpu} ({cores} cores available)")),
        ("memory", memory),
        ("kernel", output("uname", &["-srm"])),
        (
            "os",
            std::fs::read_to_string("/etc/os-release")
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map_or("unknown".into(), |v| v.trim_matches('"').to_owned()),
        ),
        ("rustc", output("rustc", &["--version"])),
        ("postgresql", postgres_version.to_owned()),
        ("wrk", output("sh", &["-c", "wrk -v 2>&1 | head -1"])),
        ("pgbench", output("sh", &["-c", "pgbench --version 2>&1"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_budget_judges_value_over_anchor() {
        let row = Row::info("resolve c=16", 600.0, "req/s")
            .against("pgbench", 1000.0)
            .budget(Budget::RatioAtLeast(0.5));
        assert_eq!(row.ratio(), Some(0.6));
        assert_eq!(row.passed(), Some(true));
        let slow = Row::info("resolve c=16", 400.0, "req/s")
            .against("pgbench", 1000.0)
            .budget(Budget::RatioAtLeast(0.5));
        assert_eq!(slow.passed(), Some(false));
    }

    #[test]
    fn a_ratio_next_to_its_bound_shows_the_decimals_that_tell_its_side() {
        let ratio = |value: f64, budget: Budget| {
            Row::info("x", value, "req/s")
                .against("pgbench", 10_000.0)
                .budget(budget)
                .cells()[3]
                .clone()
        };
        assert_eq!(ratio(4_959.0, Budget::RatioAtLeast(0.5)), "0.496");
        assert_eq!(ratio(4_999.9, Budget::RatioAtLeast(0.5)), "0.5000");
        assert_eq!(ratio(5_000.0, Budget::RatioAtLeast(0.5)), "0.50");
        assert_eq!(ratio(5_120.0, Budget::RatioAtLeast(0.5)), "0.51");
        assert_eq!(ratio(19_996.0, Budget::RatioAtMost(2.0)), "1.9996");
        assert_eq!(ratio(20_040.0, Budget::RatioAtMost(2.0)), "2.004");
        assert_eq!(ratio(4_959.0, Budget::None), "0.50");
    }

    #[test]
    fn informational_rows_are_never_judged() {
        let row = Row::info("p99", 3.0, "ms");
        assert_eq!(row.passed(), None);
        assert_eq!(summary(&[row]), (0, 0));
    }

    #[test]
    fn the_table_has_a_verdict_column_that_says_miss_loudly() {
        let rows = [
            Row::info("size", 9.0, "MiB").budget(Budget::ValueAtMost(8.0)),
            Row::info("round trips", 1.0, "").budget(Budget::ValueEquals(1.0)),
        ];
        let text = table(&rows);
        assert!(text.lines().nth(2).unwrap().ends_with("MISS"), "{text}");
        assert!(text.lines().nth(3).unwrap().ends_with("pass"), "{text}");
        assert!(markdown(&rows).contains("| size | 9 MiB |"));
    }
}
