//! `fasttrack migrate`: the SQL migrations, then a schema for every registry
//! tool, and the route functions' and the eraser's logins when their URLs are given.

use anyhow::Result;

use crate::args::Database;
use crate::bar::Bar;
use crate::database::{Use, connect};
use shared::Registry;
use shared::migrate;

pub async fn run(
    database: &Database,
    runtime_url: Option<&str>,
    eraser_url: Option<&str>,
) -> Result<()> {
    let registry = Registry::embedded();
    let pool = connect(database, Use::Migrate).await?;
    let mut conn = pool.acquire().await?;
    let report = migrate::run_with(&mut conn, registry, &Bar::new("migrate")).await?;
    if let Some(url) = runtime_url {
        let login = migrate::ensure_runtime_login(&mut conn, url).await?;
        println!("migrate: {login} is a member of fasttrack_runtime");
    }
    if let Some(url) = eraser_url {
        let login = migrate::ensure_eraser_login(&mut conn, url).await?;
        println!("migrate: {login} is a member of fasttrack_eraser");
    }
    conn.release();
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
    Ok(())
}
