//! `fasttrack summary`: what is in the database.

use anyhow::Result;

use crate::args::Database;
use crate::backend::{Registry, demo};
use crate::database::{Use, connect};

pub async fn run(database: &Database) -> Result<()> {
    let pool = connect(database, Use::Service).await?;
    print!("{}", demo::summary(&pool, Registry::embedded()).await?);
    Ok(())
}
