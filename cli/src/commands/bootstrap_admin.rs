//! `fasttrack bootstrap-admin --email`: the first admin of a fresh deployment.

use anyhow::Result;

use crate::args::Database;
use crate::database::{Use, connect};
use shared::staff::bootstrap;

pub async fn run(database: &Database, email: &str) -> Result<()> {
    let pool = connect(database, Use::Service).await?;
    let id = bootstrap::bootstrap_admin(&pool, email).await?;
    println!("{} ({id}) is now an admin", email.trim());
    Ok(())
}
