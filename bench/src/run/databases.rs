//! The generated databases a run measures, kept between runs with `--reuse`.

use std::time::Instant;

use anyhow::{Context, Result};
use sqlx::PgPool;

use super::options::SEED;
use crate::database::{self, with_database};
use crate::generate;
use crate::report::step;
use shared::Registry;
use shared::foundation::db;

/// A database of `users` generated users, made afresh unless `reuse` finds one
/// generated with the same size and seed, and the same migrations. Returns its URL and the generation
/// time (`None` when reused).
pub async fn generated_database(
    admin: &PgPool,
    server_url: &str,
    reuse: bool,
    name: &str,
    users: usize,
) -> Result<(String, Option<f64>)> {
    let organizations = (users / 200).clamp(1, 500);
    organized_database(admin, server_url, reuse, name, users, organizations).await
}

/// `name`, made afresh as a copy of the database `from` (which nobody may be
/// connected to): a generated database's twin in a second or two, where
/// generating it again takes twenty. Returns its URL.
pub async fn copied_database(
    admin: &PgPool,
    server_url: &str,
    from: &str,
    name: &str,
) -> Result<String> {
    step(&format!("copying {from} into {name}"));
    create_afresh(admin, name, Some(from)).await?;
    Ok(with_database(server_url, name))
}

/// The database `name` dropped if it exists and created again, empty or as a
/// copy of `template`.
async fn create_afresh(admin: &PgPool, name: &str, template: Option<&str>) -> Result<()> {
    db::query(sqlx::AssertSqlSafe(format!(
        "drop database if exists \"{name}\" with (force)"
    )))
    .execute(admin)
    .await
    .with_context(|| format!("dropping {name}"))?;
    let copy = template.map_or(String::new(), |t| format!(" template \"{t}\""));
    db::query(sqlx::AssertSqlSafe(format!(
        "create database \"{name}\"{copy}"
    )))
    .execute(admin)
    .await
    .with_context(|| format!("creating {name}"))?;
    Ok(())
}

/// [`generated_database`], its users spread over `organizations`.
pub async fn organized_database(
    admin: &PgPool,
    server_url: &str,
    reuse: bool,
    name: &str,
    users: usize,
    organizations: usize,
) -> Result<(String, Option<f64>)> {
    let url = with_database(server_url, name);
    // A database made before a newer migration is made again, not reused.
    let migrations = shared::migrate::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    let marker = format!(
        "fasttrack-bench users={users} organizations={organizations} seed={SEED} migrations={migrations}"
    );
    let existing: Option<Option<String>> = db::query_scalar(
        "select shobj_description(oid, 'pg_database') from pg_database where datname = $1",
    )
    .bind(name)
    .fetch_optional(admin)
    .await?;
    if reuse
        && existing
            .as_ref()
            .is_some_and(|m| m.as_deref() == Some(&marker))
    {
        step(&format!("reusing {name} ({users} users)"));
        return Ok((url, None));
    }
    step(&format!("generating {users} users into {name}"));
    create_afresh(admin, name, None).await?;
    let pool = database::connect(&url, 2).await?;
    database::migrate(&pool).await?;
    let started = Instant::now();
    generate::generate(
        &pool,
        Registry::embedded(),
        &generate::Spec {
            users,
            organizations,
            seed: SEED,
            batch: 2_000,
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    // A load with its triggers on (a login that cannot turn them off) left
    // one funnel delta per progress row, as if every member had just been
    // synced; the full sweep counts them again, as here, which is the state
    // the funnel is read in.
    db::query("select shared.recount_funnel()")
        .execute(&pool)
        .await?;
    // Such a load also marked every user changed (migration 0021's
    // triggers); the generator's statuses already match the data (its test
    // says so), so the marks go, as the first full sweep would take them off.
    db::query("truncate shared.recompute_dirty")
        .execute(&pool)
        .await?;
    db::query("vacuum analyze").execute(&pool).await?;
    pool.close().await;
    db::query(sqlx::AssertSqlSafe(format!(
        "comment on database \"{name}\" is '{marker}'"
    )))
    .execute(admin)
    .await?;
    Ok((url, Some(seconds)))
}
