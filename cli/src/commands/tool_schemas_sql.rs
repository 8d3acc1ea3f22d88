//! `fasttrack tool-schemas-sql`: the tool schemas as SQL, for psql.

use anyhow::Result;

use shared::Registry;
use shared::migrate;

pub fn run() -> Result<()> {
    print!("{}", migrate::tool_schemas_sql(Registry::embedded()));
    Ok(())
}
