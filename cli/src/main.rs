//! `fasttrack`: the commands developers and operators run by hand (and that the
//! Makefile wraps). All logic lives in the `shared` crate; `args.rs` reads the
//! command line and each command is a file in `commands/`.

mod args;
mod bar;
mod commands;
mod database;
mod local_server;
mod openapi;
mod out;

use std::process::ExitCode;

use anyhow::Result;
use tracing::level_filters::LevelFilter;

use args::{Command, Erasures};

#[tokio::main]
async fn main() -> ExitCode {
    let command = args::parse_command_line();
    let default_level = if matches!(command, Command::Serve { .. } | Command::Recompute { .. }) {
        LevelFilter::INFO
    } else {
        LevelFilter::WARN
    };
    shared::foundation::logging::init_local(default_level);
    match run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<()> {
    use commands::*;
    match command {
        Command::Migrate {
            database,
            runtime_url,
            eraser_url,
        } => migrate::run(&database, runtime_url.as_deref(), eraser_url.as_deref()).await,
        Command::BootstrapAdmin { database, email } => {
            bootstrap_admin::run(&database, &email).await
        }
        Command::ToolSchemasSql => tool_schemas_sql::run(),
        Command::Graph { format } => graph::run(format),
        Command::Demo {
            database,
            members,
            any_host,
        } => demo::run(&database, members as usize, any_host).await,
        Command::Summary { database } => summary::run(&database).await,
        Command::Serve {
            port,
            cors_allowed_origins,
        } => serve::run(port, cors_allowed_origins).await,
        Command::Token { email, expired } => token::run(&email, expired).await,
        Command::Launch {
            lms_user_id,
            email,
            name,
            nonce,
            no_nonce,
        } => {
            let nonce = match (nonce, no_nonce) {
                (_, true) => launch::Nonce::Without,
                (Some(nonce), false) => launch::Nonce::Given(nonce),
                (None, false) => launch::Nonce::Fresh,
            };
            launch::run(&lms_user_id, &email, &name, nonce)
        }
        Command::RenderEvent { file, email } => render_event::run(&file, &email).await,
        Command::Recompute {
            database,
            batch_size,
            full,
        } => recompute::run(&database, batch_size, full).await,
        Command::Export {
            database,
            email,
            user_id,
            all,
            out,
            out_dir,
        } => {
            let whom = match (email.as_deref(), user_id, all, out_dir.as_deref()) {
                (Some(email), _, _, _) => export::Whom::Email(email),
                (_, Some(id), _, _) => export::Whom::User(id),
                (_, _, true, Some(dir)) => export::Whom::Everyone(dir),
                _ => anyhow::bail!("say whom to export: --email, --user-id or --all --out-dir"),
            };
            export::run(&database, whom, out.as_deref()).await
        }
        Command::Erasures { action } => match action {
            Erasures::Run { database, key } => {
                erasures::run(&database, &key.erasure_hash_key).await
            }
            Erasures::Reapply {
                database,
                key,
                tombstones_from,
            } => {
                erasures::reapply(&database, &key.erasure_hash_key, tombstones_from.as_deref())
                    .await
            }
        },
        Command::CheckConfig {
            registry,
            dependencies,
            forms,
        } => check_config::run(&registry, &dependencies, &forms),
    }
}

/// The error and its causes on one line, `context: cause: ...`. A cause is left
/// out when the text before it already ends with it (sqlx's errors, for one,
/// print their source in their own message).
fn describe(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    let mut previous = text.clone();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !previous.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        previous = cause;
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_described_with_its_context_and_without_repeated_causes() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let error = anyhow::Error::new(io).context("serving on 127.0.0.1:3000");
        assert_eq!(
            super::describe(&error),
            "serving on 127.0.0.1:3000: address in use"
        );
        // sqlx's message already ends with its source's.
        let refused = sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let error = anyhow::Error::new(refused).context("connecting");
        assert_eq!(
            super::describe(&error),
            "connecting: error communicating with database: connection refused"
        );
    }
}
