//! `fasttrack summary`: what is in the database.

use anyhow::Result;

use crate::args::Database;
use crate::database::{Use, connect};
use crate::out;
use shared::Registry;
use shared::demo;

pub async fn run(database: &Database) -> Result<()> {
    let pool = connect(database, Use::Service).await?;
    out::print(demo::summary(&pool, Registry::embedded()).await?)?;
    Ok(())
}
