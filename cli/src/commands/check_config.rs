//! `fasttrack check-config`: the registry and dependency files on disk, validated.

use std::path::Path;

use anyhow::{Context, Result};

use shared::Registry;

pub fn run(registry: &Path, dependencies: &Path) -> Result<()> {
    let read =
        |path: &Path| std::fs::read_to_string(path).with_context(|| path.display().to_string());
    let checked =
        Registry::from_json(&read(registry)?, &read(dependencies)?).with_context(|| {
            format!(
                "checking {} and {}",
                registry.display(),
                dependencies.display()
            )
        })?;
    println!(
        "config is valid: {} tools, {} dependency fields, {} outputs",
        checked.tools().len(),
        checked
            .tools()
            .iter()
            .map(|t| t.dependencies.len())
            .sum::<usize>(),
        checked
            .tools()
            .iter()
            .map(|t| t.outputs.len())
            .sum::<usize>()
    );
    Ok(())
}
