//! `fasttrack recompute`: the scheduled unlock recompute, once (`--full`: a
//! sweep of every user).

use anyhow::Result;

use crate::args::Database;
use crate::database::{Use, connect};
use crate::out;
use shared::Registry;
use shared::unlocks::recompute;

pub async fn run(database: &Database, batch_size: i64, full: bool) -> Result<()> {
    let pool = connect(database, Use::Recompute).await?;
    let scope = if full {
        recompute::Scope::All
    } else {
        recompute::Scope::Changed
    };
    let report = recompute::run_with(
        &pool,
        Registry::embedded(),
        batch_size.max(1),
        recompute::Housekeeping::default(),
        scope,
    )
    .await?;
    out::println(serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
