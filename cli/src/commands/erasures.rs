//! `fasttrack erasures`: the erasure job once, by hand (`run`), and the
//! erasures a restore of an older backup must make again (`reapply`).

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::args::Database;
use crate::database::{Use, connect};
use crate::out;
use shared::foundation::config::{self, Environment, Layered};
use shared::identity::tombstones::ErasureKeys;
use shared::rights::{eraser, reapply};

/// Erases everyone whose request is due, as the erase-users function does on
/// its schedule, until none is left.
pub async fn run(database: &Database, key: &str) -> Result<()> {
    let keys = keys(key)?;
    let pool = connect(database, Use::Service).await?;
    let mut total = eraser::Report::default();
    loop {
        let report = eraser::run(&pool, &keys, eraser::DEFAULT_BATCH).await?;
        total.erased += report.erased;
        total.skipped += report.skipped;
        total.left = report.left;
        if report.left == 0 {
            break;
        }
    }
    out::println(serde_json::to_string_pretty(&total)?)?;
    Ok(())
}

/// Imports the tombstones of `tombstones_from` (when given), then erases
/// again everyone a standing tombstone names.
pub async fn reapply(database: &Database, key: &str, tombstones_from: Option<&str>) -> Result<()> {
    let keys = keys(key)?;
    let pool = connect(database, Use::Service).await?;
    let imported = match tombstones_from {
        Some(url) => {
            let source = connect(
                &Database {
                    database_url: url.to_string(),
                    pooler_mode: "session".into(),
                },
                Use::Service,
            )
            .await
            .context("the database to take tombstones from")?;
            let tombstones = reapply::tombstones(&source).await?;
            source.close().await;
            reapply::import(&pool, &tombstones).await?
        }
        None => 0,
    };
    let report = reapply::reapply(&pool, &keys).await?;
    out::println(serde_json::to_string_pretty(&serde_json::json!({
        "tombstones_imported": imported,
        "matched": report.matched,
        "erased": report.erased,
    }))?)?;
    Ok(())
}

/// The hashes' key, checked as the functions check it.
fn keys(key: &str) -> Result<ErasureKeys> {
    let source = Layered {
        values: HashMap::from([("ERASURE_HASH_KEY", key.to_string())]),
        fallback: &Environment,
    };
    let key = config::erasure_hash_key(&source)?.context("ERASURE_HASH_KEY is empty")?;
    Ok(ErasureKeys::new(key))
}
