//! `fasttrack-bench soak`: sustained load on the local server, a mix of reads,
//! draft saves, submits and LearnWorlds syncs from many users, optionally with
//! a fault in the middle (every service connection terminated, or PostgreSQL
//! restarted). Saves send the version the clients last saw as If-Match (and
//! once more over the one a refusal names), and each acknowledged save must be
//! the version after it. Afterwards the database is checked against what
//! clients were told: every acknowledged write present, no duplicate rows,
//! every submission's outputs equal to its submitted data, every completed
//! tool with its outputs, nothing unlocked without its dependencies. The
//! server's memory is sampled throughout.

mod clients;
mod drive;
mod fault;
mod memory;
mod mix;
mod stored;
mod verdict;

use std::path::PathBuf;

use anyhow::Result;
use sqlx::PgPool;
use uuid::Uuid;

use crate::database::{self, with_database};
use crate::fixtures;
use crate::generate;
use crate::server::Server;
pub use fault::Fault;
use mix::Participant;
use shared::Registry;
use shared::foundation::db;
use verdict::Verdicts;

pub struct Options {
    pub database_url: String,
    pub users: usize,
    pub seconds: u64,
    pub workers: usize,
    pub fault: Fault,
    pub restart_command: Option<String>,
    pub bin_dir: PathBuf,
    pub judge_memory: bool,
}

/// The soak's own database, made afresh on DATABASE_URL's server.
const DATABASE: &str = "fasttrack_soak";

/// Whether every check passed; each is printed as it is made.
pub async fn soak(options: Options) -> Result<bool> {
    let registry = Registry::embedded();
    let admin = database::connect(&options.database_url, 2).await?;
    let url = with_database(&options.database_url, DATABASE);
    // Open to the end, as before: the terminate fault counts its idle
    // connections among the database's.
    let (_generated, people) = prepare(&admin, &url, options.users, registry).await?;

    let work = std::env::temp_dir().join(format!("fasttrack-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let server = Server::start(&options.bin_dir, &url, 4, &work.join("server.log"))?;
    eprintln!(
        "soak: {} s, {} workers, {} participants, fault: {:?}",
        options.seconds,
        options.workers,
        people.len(),
        options.fault
    );
    let plan = drive::Plan {
        seconds: options.seconds,
        workers: options.workers,
        fault: options.fault,
        restart_command: options.restart_command,
    };
    let seen = drive::drive(plan, server, &admin, DATABASE, people).await?;

    let mut verdicts = Verdicts::new();
    clients::judge(&seen, &mut verdicts);
    stored::judge(&url, &seen.acks, registry, &mut verdicts).await?;
    memory::judge(
        &seen.samples,
        seen.deadline,
        options.judge_memory,
        &mut verdicts,
    );
    let pass = verdicts.passed();
    if pass {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("soak: the server's log is in {}", work.display());
    }
    Ok(pass)
}

/// The soak's database, made afresh with `users` generated participants, and
/// a token for each.
async fn prepare(
    admin: &PgPool,
    url: &str,
    users: usize,
    registry: &Registry,
) -> Result<(PgPool, Vec<Participant>)> {
    for statement in [
        format!("drop database if exists {DATABASE} with (force)"),
        format!("create database {DATABASE}"),
    ] {
        db::query(sqlx::AssertSqlSafe(statement))
            .execute(admin)
            .await?;
    }
    let pool = database::connect(url, 2).await?;
    database::migrate(&pool).await?;
    generate::generate(
        &pool,
        registry,
        &generate::Spec {
            users,
            organizations: 4,
            seed: 7,
            batch: 1_000,
        },
    )
    .await?;
    let keys = fixtures::token_keys();
    let now = chrono::Utc::now().timestamp() as u64;
    let rows: Vec<(Uuid, String)> =
        db::query_as("select id, lms_user_id from shared.users where role = 'user' order by id")
            .fetch_all(&pool)
            .await?;
    let mut people = Vec::new();
    for (id, lms_user_id) in rows {
        people.push(Participant {
            id,
            lms_user_id,
            token: keys.issue(id, now)?.0,
        });
    }
    Ok((pool, people))
}
