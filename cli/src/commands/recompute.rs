//! `fasttrack recompute`: the scheduled unlock recompute, once.

use anyhow::Result;

use crate::args::Database;
use crate::database::{Use, connect};
use shared::Registry;
use shared::unlocks::recompute;

pub async fn run(database: &Database, batch_size: i64) -> Result<()> {
    let pool = connect(database, Use::Recompute).await?;
    let report = recompute::run(&pool, Registry::embedded(), batch_size.max(1)).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
