//! `fasttrack-bench`: the benchmark harness. So far: the data generator, and the
//! scheduled recompute timed over a generated database.

mod generate;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use shared::{Registry, db, migrate, recompute};

#[derive(Parser)]
#[command(name = "fasttrack-bench", about = "Fast Track benchmark harness")]
struct Cli {
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        default_value = ""
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fill the database with N users across organizations, each partway through
    /// the curriculum. Deterministic for a seed.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        #[arg(long, default_value_t = 50)]
        organizations: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 2_000)]
        batch: usize,
    },
    /// Time the scheduled recompute over what is in the database: `runs` passes,
    /// reporting each and the median.
    Recompute {
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = recompute::DEFAULT_BATCH_SIZE)]
        batch_size: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    if cli.database_url.is_empty() {
        return Err("DATABASE_URL is not set".into());
    }
    let registry = Registry::embedded();
    let pool = db::connect(&cli.database_url, 2)
        .await
        .map_err(|e| e.to_string())?;
    match cli.command {
        Command::Generate {
            users,
            organizations,
            seed,
            batch,
        } => {
            migrate::run(&pool, registry)
                .await
                .map_err(|e| e.to_string())?;
            let started = Instant::now();
            let spec = generate::Spec {
                users,
                organizations: organizations.max(1),
                seed,
                batch: batch.max(1),
            };
            let counts = generate::generate(&pool, registry, &spec)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "generated {} users, {} progress rows, {} submissions, {} field outputs in {:.1} s (seed {seed})",
                counts.users,
                counts.progress_rows,
                counts.submissions,
                counts.field_outputs,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Recompute { runs, batch_size } => {
            let mut seconds = Vec::new();
            for run in 1..=runs.max(1) {
                let started = Instant::now();
                let report = recompute::run(&pool, registry, batch_size)
                    .await
                    .map_err(|e| e.to_string())?;
                let elapsed = started.elapsed().as_secs_f64();
                println!(
                    "recompute run {run}: {elapsed:.2} s over {} users ({} rows created, {} unlocks)",
                    report.users,
                    report.rows_created,
                    report.unlocked.values().sum::<u64>()
                );
                seconds.push(elapsed);
            }
            seconds.sort_by(f64::total_cmp);
            println!("recompute median: {:.2} s", seconds[seconds.len() / 2]);
        }
    }
    Ok(())
}
