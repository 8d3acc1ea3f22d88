//! The dependency graph as Mermaid and Graphviz DOT: one node per tool, grouped
//! by module, and one edge per producer → consumer pair labelled with the fields
//! it carries. Dashed edges carry only optional fields; optional tools are dashed.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Registry, Tool};

/// (producer sprint, consumer sprint) → (fields, every field optional?)
fn edges(registry: &Registry) -> BTreeMap<(u8, u8), (Vec<&str>, bool)> {
    let mut edges: BTreeMap<(u8, u8), (Vec<&str>, bool)> = BTreeMap::new();
    for tool in registry.tools() {
        for dep in &tool.dependencies {
            let source = registry.tool(&dep.source).expect("validated source");
            let edge = edges
                .entry((source.sprint, tool.sprint))
                .or_insert((Vec::new(), true));
            edge.0.push(&dep.field);
            edge.1 &= !dep.required;
        }
    }
    edges
}

fn by_sprint(registry: &Registry, sprint: u8) -> &Tool {
    registry
        .tools()
        .iter()
        .find(|t| t.sprint == sprint)
        .expect("edge endpoints are registry tools")
}

fn mermaid_id(tool: &Tool) -> String {
    tool.slug.replace('-', "_")
}

pub fn to_mermaid(registry: &Registry) -> String {
    let mut out = String::from("flowchart LR\n");
    for module in registry.modules() {
        let _ = writeln!(
            out,
            "  subgraph module_{}[\"{} · {}\"]",
            module.number, module.number, module.name
        );
        for tool in registry
            .tools()
            .iter()
            .filter(|t| t.module == module.number)
        {
            let _ = writeln!(
                out,
                "    {}[\"{} · {}\"]",
                mermaid_id(tool),
                tool.sprint,
                tool.name
            );
        }
        out.push_str("  end\n");
    }
    for ((from, to), (fields, optional)) in edges(registry) {
        let arrow = if optional { "-.->" } else { "-->" };
        let _ = writeln!(
            out,
            "  {} {arrow}|\"{}\"| {}",
            mermaid_id(by_sprint(registry, from)),
            fields.join("<br/>"),
            mermaid_id(by_sprint(registry, to))
        );
    }
    let optional: Vec<String> = registry
        .tools()
        .iter()
        .filter(|t| t.optional)
        .map(mermaid_id)
        .collect();
    if !optional.is_empty() {
        out.push_str("  classDef optional stroke-dasharray: 5 5\n");
        let _ = writeln!(out, "  class {} optional", optional.join(","));
    }
    out
}

fn dot_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn to_dot(registry: &Registry) -> String {
    let mut out = String::from(
        "digraph fasttrack {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for module in registry.modules() {
        let _ = writeln!(out, "  subgraph cluster_module_{} {{", module.number);
        let _ = writeln!(
            out,
            "    label={};",
            dot_string(&format!("{} · {}", module.number, module.name))
        );
        for tool in registry
            .tools()
            .iter()
            .filter(|t| t.module == module.number)
        {
            let style = if tool.optional {
                ", style=\"rounded,dashed\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} [label={}{style}];",
                dot_string(&tool.slug),
                dot_string(&format!("{} · {}", tool.sprint, tool.name))
            );
        }
        out.push_str("  }\n");
    }
    for ((from, to), (fields, optional)) in edges(registry) {
        let style = if optional { ", style=dashed" } else { "" };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{style}];",
            dot_string(&by_sprint(registry, from).slug),
            dot_string(&by_sprint(registry, to).slug),
            dot_string(&fields.join("\n"))
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_edge_appears_in_both_graphs() {
        let registry = Registry::embedded();
        let mermaid = to_mermaid(registry);
        let dot = to_dot(registry);
        assert!(mermaid.starts_with("flowchart LR\n"));
        assert!(dot.starts_with("digraph fasttrack {"));
        let field_edges: usize = edges(registry).values().map(|(f, _)| f.len()).sum();
        assert_eq!(field_edges, 105);
        assert!(mermaid.contains("woop -->|\"intro.woop.wish\"| know_thyself"));
        assert!(dot.contains("\"woop\" -> \"know-thyself\" [label=\"intro.woop.wish\"];"));
        for tool in registry.tools() {
            assert!(mermaid.contains(&format!("    {}[", mermaid_id(tool))));
            assert!(dot.contains(&format!("    \"{}\" [label=", tool.slug)));
        }
        assert!(mermaid.contains("class energy,customer_service,agile_teams optional"));
    }
}
