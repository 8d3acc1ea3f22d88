//! Log setup for every binary. One line per event; the level comes from
//! `AWS_LAMBDA_LOG_LEVEL` (Lambda's advanced logging controls) or `RUST_LOG`,
//! as `info` or `info,sqlx=warn` (a default level and per-target levels).
//!
//! The filter is a static [`Targets`] list rather than `EnvFilter`: `EnvFilter`
//! tracks span scopes per thread on every poll of an instrumented future
//! (about a tenth of a warm request's instructions under callgrind) and brings
//! a regex engine into every binary, for directive forms this service never
//! uses.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The Lambda functions: stdout, which Lambda ships to CloudWatch with its own
/// timestamps; JSON lines when the function's log format is JSON (the
/// template sets it), text otherwise.
pub fn init_lambda() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let filter = filter(level.as_deref(), LevelFilter::INFO);
    let lines = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry.with(lines.json()).try_init()
    } else {
        registry.with(lines).try_init()
    };
}

/// Local tools and the local server: stderr, timestamped, coloured on a
/// terminal only.
pub fn init_local(default: LevelFilter) {
    let level = std::env::var("RUST_LOG").ok();
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry()
        .with(filter(level.as_deref(), default))
        .with(lines)
        .try_init();
}

/// `directives` (`info`, `warn,shared=debug`) as a filter; `default` when they
/// are absent or not valid, so a typo never silences the logs.
pub fn filter(directives: Option<&str>, default: LevelFilter) -> Targets {
    directives
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .and_then(|d| Targets::from_str(d).ok())
        .unwrap_or_else(|| Targets::new().with_default(default))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn a_bare_level_sets_the_default_and_targets_refine_it() {
        let info = filter(Some("info"), LevelFilter::WARN);
        assert!(info.would_enable("shared::app", &Level::INFO));
        assert!(!info.would_enable("shared::app", &Level::DEBUG));
        let mixed = filter(Some("warn,shared=debug"), LevelFilter::INFO);
        assert!(mixed.would_enable("shared::db", &Level::DEBUG));
        assert!(!mixed.would_enable("sqlx::query", &Level::INFO));
        assert!(mixed.would_enable("sqlx::query", &Level::WARN));
        // Lambda's advanced logging controls write levels in capitals.
        assert!(filter(Some("DEBUG"), LevelFilter::INFO).would_enable("x", &Level::DEBUG));
    }

    #[test]
    fn absent_or_invalid_directives_fall_back_to_the_default() {
        for directives in [
            None,
            Some(""),
            Some("  "),
            Some("x=[y]"),
            Some("shared=loud"),
        ] {
            let f = filter(directives, LevelFilter::INFO);
            assert!(f.would_enable("shared", &Level::INFO), "{directives:?}");
            assert!(!f.would_enable("shared", &Level::DEBUG), "{directives:?}");
        }
    }
}
