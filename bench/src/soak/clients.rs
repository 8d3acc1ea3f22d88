//! What the clients saw: answers by status, and around a fault, how the
//! service failed and recovered.

use std::collections::BTreeMap;
use std::time::Duration;

use super::drive::{Outcome, Seen};
use super::verdict::Verdicts;

pub fn judge(seen: &Seen, verdicts: &mut Verdicts) {
    let outcomes = &seen.outcomes;
    let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let ok = count(&|o| (200..300).contains(&o.status));
    let client_errors = count(&|o| (400..500).contains(&o.status));
    let unavailable = count(&|o| o.status == 503);
    let other_server_errors = count(&|o| o.status >= 500 && o.status != 503);
    let no_answer = count(&|o| o.status == 0);
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for o in outcomes {
        *by_status.entry(o.status).or_default() += 1;
    }
    println!(
        "soak: {} requests in {:.0} s: {ok} 2xx, {client_errors} 4xx, {unavailable} 503, {other_server_errors} other 5xx, {no_answer} unanswered; by status {by_status:?}",
        outcomes.len(),
        seen.started.elapsed().as_secs_f64()
    );
    match seen.fault_window {
        None => verdicts.check(
            format!(
                "zero 5xx and zero unanswered ({unavailable} 503, {other_server_errors} other 5xx, {no_answer} unanswered)"
            ),
            unavailable + other_server_errors + no_answer == 0,
        ),
        Some(window) => judge_fault(
            outcomes,
            window,
            other_server_errors,
            no_answer,
            verdicts,
        ),
    }
}

/// Around a fault from `from` to `to`: failures are 503s, fast, and over
/// soon after it.
fn judge_fault(
    outcomes: &[Outcome],
    (from, to): (Duration, Duration),
    other_server_errors: usize,
    no_answer: usize,
    verdicts: &mut Verdicts,
) {
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
    verdicts.check(
        format!(
            "failures are 503s, not other 5xx ({other_server_errors} other 5xx, {no_answer} unanswered)"
        ),
        other_server_errors + no_answer == 0,
    );
    verdicts.check(
        format!(
            "failures are fast: the slowest took {:.2} s (the request timeout is 8 s)",
            slowest.as_secs_f64()
        ),
        slowest <= Duration::from_secs(9),
    );
    let recovery = recovered_at.map(|r| r.saturating_sub(to));
    verdicts.check(
        format!(
            "recovered by itself: first 2xx {} after the fault, {failed_after} failures later than 5 s after that",
            recovery.map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64()))
        ),
        recovery.is_some_and(|d| d <= Duration::from_secs(10)) && failed_after == 0,
    );
}
