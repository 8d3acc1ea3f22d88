//! The server's memory through the soak: sampled, then judged flat or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::verdict::Verdicts;

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

/// Samples `pid`'s RSS every 250 ms until `done`.
pub fn sampler(
    pid: u32,
    started: Instant,
    done: Arc<AtomicBool>,
) -> JoinHandle<Vec<(Duration, f64)>> {
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
}

/// The first quarter after warm-up against the last quarter; judged only
/// when `judged` (long runs), else reported.
pub fn judge(
    samples: &[(Duration, f64)],
    deadline: Duration,
    judged: bool,
    verdicts: &mut Verdicts,
) {
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
            if judged {
                verdicts.check(line, growth <= 4.0_f64.max(early * 0.1));
            } else {
                println!("  info {line} (judged on runs of 60 s or more)");
            }
        }
        _ => println!("  info too few memory samples ({})", samples.len()),
    }
}
