//! `fasttrack graph`: the tool dependency graph.

use anyhow::Result;

use crate::args::GraphFormat;
use shared::Registry;
use shared::registry;

pub fn run(format: GraphFormat) -> Result<()> {
    let registry = Registry::embedded();
    match format {
        GraphFormat::Mermaid => print!("{}", registry::to_mermaid(registry)),
        GraphFormat::Dot => print!("{}", registry::to_dot(registry)),
    }
    Ok(())
}
