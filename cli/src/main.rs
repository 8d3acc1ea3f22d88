//! `fasttrack`: the commands developers and operators run by hand (and that the
//! Makefile wraps). All logic lives in the `shared` crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use shared::{Registry, db, demo, migrate, registry};

#[derive(Parser)]
#[command(
    name = "fasttrack",
    about = "Fast Track backend: developer and operator commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the SQL migrations, then give every registry tool its schema.
    /// Fails, naming the schema, when the database has drifted from the registry.
    Migrate {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Print `SELECT shared.create_tool_schema(...)` for every tool, for psql.
    ToolSchemasSql,
    /// Print the tool dependency graph.
    Graph {
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Load the demo data (once) and print a summary of the database.
    Demo {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Print a summary of what is in the database.
    Summary {
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
    /// Validate config files on disk (defaults: the repo's config/).
    CheckConfig {
        #[arg(long, default_value = "config/tool-registry.json")]
        registry: PathBuf,
        #[arg(long, default_value = "config/dependencies.json")]
        dependencies: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    let registry = Registry::embedded();
    match command {
        Command::Migrate { database_url } => {
            let pool = db::connect(&database_url, 2)
                .await
                .map_err(|e| e.to_string())?;
            let report = migrate::run(&pool, registry)
                .await
                .map_err(|e| e.to_string())?;
            if report.is_noop() {
                println!(
                    "migrate: up to date ({} tool schemas)",
                    registry.tools().len()
                );
            } else {
                println!(
                    "migrate: applied {} migration(s) {:?}, created {} tool schema(s)",
                    report.applied_migrations.len(),
                    report.applied_migrations,
                    report.created_schemas.len()
                );
            }
        }
        Command::ToolSchemasSql => print!("{}", migrate::tool_schemas_sql(registry)),
        Command::Graph { format } => match format {
            GraphFormat::Mermaid => print!("{}", registry::to_mermaid(registry)),
            GraphFormat::Dot => print!("{}", registry::to_dot(registry)),
        },
        Command::Demo { database_url } => {
            let pool = db::connect(&database_url, 2)
                .await
                .map_err(|e| e.to_string())?;
            let loaded = demo::seed(&pool, registry)
                .await
                .map_err(|e| e.to_string())?;
            if loaded {
                println!("demo data loaded");
            } else {
                println!("demo data already present");
            }
            print!(
                "{}",
                demo::summary(&pool, registry)
                    .await
                    .map_err(|e| e.to_string())?
            );
        }
        Command::Summary { database_url } => {
            let pool = db::connect(&database_url, 2)
                .await
                .map_err(|e| e.to_string())?;
            print!(
                "{}",
                demo::summary(&pool, registry)
                    .await
                    .map_err(|e| e.to_string())?
            );
        }
        Command::CheckConfig {
            registry,
            dependencies,
        } => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
            };
            let checked = Registry::from_json(&read(&registry)?, &read(&dependencies)?)
                .map_err(|e| e.to_string())?;
            println!(
                "config is valid: {} tools, {} dependency fields, {} outputs",
                checked.tools().len(),
                checked
                    .tools()
                    .iter()
                    .map(|t| t.dependencies.len())
                    .sum::<usize>(),
                checked
                    .tools()
                    .iter()
                    .map(|t| t.outputs.len())
                    .sum::<usize>()
            );
        }
    }
    Ok(())
}
