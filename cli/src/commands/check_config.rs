//! `fasttrack check-config`: the registry, dependency and form files on disk,
//! validated.

use std::path::Path;

use anyhow::{Context, Result};

use crate::out;
use shared::Registry;
use shared::registry::Forms;

pub fn run(registry: &Path, dependencies: &Path, forms: &Path) -> Result<()> {
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
    let forms = Forms::from_json(&read(forms)?, &checked).map_err(|problems| {
        anyhow::anyhow!(
            "checking {}: {} problem(s):\n  - {}",
            forms.display(),
            problems.len(),
            problems.join("\n  - ")
        )
    })?;
    out::println(format_args!(
        "config is valid: {} tools, {} dependency fields, {} outputs, {} forms",
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
            .sum::<usize>(),
        forms.tools().len()
    ))?;
    Ok(())
}
