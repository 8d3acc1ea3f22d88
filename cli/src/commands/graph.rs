//! `fasttrack graph`: the tool dependency graph.

use anyhow::Result;

use crate::args::GraphFormat;
use crate::out;
use shared::Registry;
use shared::registry;

pub fn run(format: GraphFormat) -> Result<()> {
    let registry = Registry::embedded();
    out::print(match format {
        GraphFormat::Mermaid => registry::to_mermaid(registry),
        GraphFormat::Dot => registry::to_dot(registry),
    })?;
    Ok(())
}
