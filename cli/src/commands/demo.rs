//! `fasttrack demo`: the demo data, loaded once, into a database on this
//! machine unless told otherwise (it has an admin).

use anyhow::{Result, bail};

use crate::args::Database;
use crate::bar::Bar;
use crate::database::{Use, connect, on_this_machine};
use crate::out;
use shared::Registry;
use shared::demo;

pub async fn run(database: &Database, members: usize, any_host: bool) -> Result<()> {
    let registry = Registry::embedded();
    if !any_host && !on_this_machine(&database.database_url) {
        bail!(
            "the database is not on this machine: the demo data (an admin among it) \
             goes into a local database only; pass --any-host to load it there anyway"
        );
    }
    let pool = connect(database, Use::Service).await?;
    let loaded = demo::seed_with(&pool, registry, members, &Bar::new("demo")).await?;
    println!(
        "{}",
        if loaded {
            "demo data loaded"
        } else {
            "demo data already present"
        }
    );
    out::print(demo::summary(&pool, registry).await?)?;
    Ok(())
}
