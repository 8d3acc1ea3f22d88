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

/// Crates whose TRACE holds whole requests, responses or events:
/// `lambda_runtime` logs the raw API Gateway event, with its `Authorization`
/// header, the webhook's signature header (in `shared-secret` mode, the secret
/// itself) and a launch's signed body; the HTTP stack (hyper, h2, rustls) the
/// bytes it moves; the AWS SDK the requests and responses of Secrets Manager,
/// whose answers are the secrets. Targets starting with these are held at
/// DEBUG whatever the directives say (a target matches by prefix, as
/// `tracing`'s own filters match it, so the runtime's API client is held too).
const WHOLE_EVENTS_AT_TRACE: [&str; 8] = [
    "lambda_runtime",
    "lambda_http",
    "hyper",
    "h2",
    "rustls",
    "aws_smithy",
    "aws_sdk",
    "aws_config",
];

/// `directives` (`info`, `warn,shared=debug`) as a filter; `default` when they
/// are absent or not valid, so a typo never silences the logs. Never TRACE for
/// [`WHOLE_EVENTS_AT_TRACE`].
pub fn filter(directives: Option<&str>, default: LevelFilter) -> Targets {
    let targets = directives
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .and_then(|d| Targets::from_str(d).ok())
        .unwrap_or_else(|| Targets::new().with_default(default));
    let logs_whole_events = |target: &str| {
        WHOLE_EVENTS_AT_TRACE
            .iter()
            .any(|krate| target.starts_with(krate))
    };
    let mut capped = match targets.default_level() {
        Some(level) => Targets::new().with_default(level),
        None => Targets::new(),
    };
    for (target, level) in &targets {
        let level = if logs_whole_events(target) {
            level.min(LevelFilter::DEBUG)
        } else {
            level
        };
        capped = capped.with_target(target, level);
    }
    for krate in WHOLE_EVENTS_AT_TRACE {
        if capped.would_enable(krate, &tracing::Level::TRACE) {
            capped = capped.with_target(krate, LevelFilter::DEBUG);
        }
    }
    capped
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
    fn the_lambda_runtime_never_logs_whole_events_whatever_the_directives() {
        let raw_event = "lambda_runtime::layers::api_response";
        for directives in [
            "trace",
            "TRACE",
            "info,lambda_runtime=trace",
            "info,lambda_runtime::layers=trace",
            "info,lambda_runtime::layers::api_response=trace,lambda_http=trace",
        ] {
            let f = filter(Some(directives), LevelFilter::INFO);
            assert!(!f.would_enable(raw_event, &Level::TRACE), "{directives}");
            assert!(
                !f.would_enable("lambda_http", &Level::TRACE),
                "{directives}"
            );
            assert!(f.would_enable(raw_event, &Level::DEBUG), "{directives}");
        }
        // Everything else keeps its level, and nothing is raised.
        let trace = filter(Some("trace"), LevelFilter::INFO);
        assert!(trace.would_enable("shared::app", &Level::TRACE));
        assert!(trace.would_enable("sqlx::query", &Level::TRACE));
        let info = filter(Some("info"), LevelFilter::INFO);
        assert!(!info.would_enable(raw_event, &Level::DEBUG));
        assert!(info.would_enable(raw_event, &Level::INFO));
    }

    #[test]
    fn the_http_stack_and_the_aws_sdk_never_log_at_trace_whatever_the_directives() {
        for directives in [
            "trace",
            "info,hyper=trace,aws_smithy_runtime=trace",
            "debug,h2=trace",
        ] {
            let f = filter(Some(directives), LevelFilter::INFO);
            for target in [
                "hyper::proto::h1::io",
                "hyper_util::client",
                "h2::codec",
                "rustls::client",
                "aws_smithy_runtime::client::http",
                "aws_sdk_secretsmanager::operation",
                "aws_config::imds",
            ] {
                assert!(
                    !f.would_enable(target, &Level::TRACE),
                    "{directives}: {target}"
                );
            }
        }
    }

    #[test]
    fn the_http_stack_is_held_at_debug_not_silenced() {
        let f = filter(Some("trace"), LevelFilter::INFO);
        assert!(f.would_enable("hyper::proto", &Level::DEBUG));
        assert!(f.would_enable("aws_smithy_runtime", &Level::DEBUG));
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
