//! `fasttrack tool-schemas-sql`: the tool schemas as SQL, for psql.

use anyhow::Result;

use crate::out;
use shared::Registry;
use shared::migrate;

pub fn run() -> Result<()> {
    out::print(migrate::tool_schemas_sql(Registry::embedded()))?;
    Ok(())
}
