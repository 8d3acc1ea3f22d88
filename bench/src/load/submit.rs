//! submit-tool's full submit of a tool, as a participant makes it.

use serde_json::{Value, json};
use uuid::Uuid;

use super::call::{Bind, Body, Call, Statement, bearer, pg_array};
use crate::backend::{Registry, Tool, submissions, tool_sql};
use crate::rng::Rng;

/// A full submit of `tool`, and the four statements a save of an open tool
/// runs (see `shared::submissions::save`).
pub fn submit_call(
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
    organization: Option<Uuid>,
    token: String,
    rng: &mut Rng,
) -> Call {
    let data = filled_data(tool, rng);
    Call {
        method: "PUT",
        path: format!("/tools/{}/submission", tool.slug),
        headers: bearer(token),
        body: Body::Fixed(json!({"data": data, "status": "submitted"}).to_string()),
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: submissions::LOCK_PROGRESS_SQL.to_owned(),
                binds: vec![
                    (Bind::Value(user.to_string()), "uuid"),
                    (Bind::Value(tool.slug.clone()), "text"),
                    (Bind::Null, "text"),
                    (Bind::Null, "bytea"),
                ],
            },
            save_statement(registry, tool, user, organization, &data),
            Statement::plain("COMMIT"),
        ],
    }
}

/// Every output of `tool` filled with a few words.
fn filled_data(tool: &Tool, rng: &mut Rng) -> Value {
    let mut data = serde_json::Map::new();
    for output in &tool.outputs {
        let words = 4 + rng.below(20) as usize;
        let text: Vec<&str> = (0..words)
            .map(|_| {
                ["plan", "team", "cash", "growth", "customers", "focus"][rng.below(6) as usize]
            })
            .collect();
        data.insert(output.key.clone(), Value::String(text.join(" ")));
    }
    Value::Object(data)
}

/// The save of a submitted `data`: the submission, its outputs, and the
/// requirements of the tools that depend on `tool`.
fn save_statement(
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
    organization: Option<Uuid>,
    data: &Value,
) -> Statement {
    let outputs = submissions::extract_outputs(tool, data);
    let fields: Vec<String> = outputs.keys().cloned().collect();
    let values: Vec<String> = outputs.values().map(Value::to_string).collect();
    let (mut requirement_tools, mut requirement_fields) = (Vec::new(), Vec::new());
    for dependent in registry.dependents(tool) {
        for dep in dependent.required_dependencies() {
            requirement_tools.push(dependent.slug.clone());
            requirement_fields.push(dep.field.clone());
        }
    }
    Statement {
        sql: tool_sql::save_submission(registry, tool)
            .as_str()
            .to_owned(),
        // TODO(shared-save-binds): a copy of the 13 binds of the product's save
        // (`tool_sql::save_submission` as `shared::submissions::save` binds
        // it), to be replaced by a typed struct from `shared`.
        binds: vec![
            (Bind::Value(user.to_string()), "uuid"),
            (organization.map(|o| o.to_string()).into(), "uuid"),
            (Bind::Value(data.to_string()), "jsonb"),
            (Bind::Value("submitted".into()), "text"),
            (Bind::Value(pg_array(&fields)), "text[]"),
            (Bind::Value(pg_array(&values)), "jsonb[]"),
            (Bind::Value("100".into()), "int4"),
            (Bind::Null, "int4"),
            (Bind::Null, "text"),
            (Bind::Value(tool.slug.clone()), "text"),
            (Bind::Value(pg_array(&requirement_tools)), "text[]"),
            (Bind::Value(pg_array(&requirement_fields)), "text[]"),
            (Bind::Value(pg_array(&requirement_fields)), "text[]"),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::pgbench::pgbench_statement;

    #[test]
    fn the_real_save_statements_become_single_lines_without_comments() {
        let registry = Registry::embedded();
        let tool = registry.tool("woop").unwrap();
        let call = submit_call(
            registry,
            tool,
            Uuid::nil(),
            None,
            String::new(),
            &mut Rng::new(1),
        );
        for (i, statement) in call.statements.iter().enumerate() {
            let (text, _) = pgbench_statement(statement, &format!("s{i}"));
            assert!(!text.contains("--") && !text.contains('\n'), "{text}");
            assert!(!text.contains('$'), "every bind became a variable: {text}");
        }
    }
}
