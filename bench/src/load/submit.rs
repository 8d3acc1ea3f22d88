//! submit-tool's full submit of a tool, as a participant makes it.
//!
//! wrk sends each call again and again, so each is an update of a submission
//! the generated data holds, sent with `If-Match: *` (any version): one ETag
//! would match only the first time. The statement takes the same path as with
//! an ETag.

use serde_json::{Value, json};
use uuid::Uuid;

use super::call::{Bind, Body, Call, Statement, bearer, pg_array};
use shared::Registry;
use shared::registry::{Forms, Tool};
use shared::submissions::sql::{self, Param, SaveBinds};
use shared::submissions::{self, Budget, IfMatch, SaveRequest, SubmissionStatus};

use crate::fixtures;
use crate::rng::Rng;

/// A full submit of `tool` over the user's submission of it, and the four
/// statements a save of an open tool runs (see `shared::submissions::save`),
/// with the binds the save itself makes ([`sql::lock_params`], [`SaveBinds`]).
pub fn submit_call(
    registry: &Registry,
    tool: &Tool,
    user: Uuid,
    organization: Option<Uuid>,
    token: String,
    rng: &mut Rng,
) -> Call {
    let data = filled_data(tool, rng);
    let Value::Object(fields) = data.clone() else {
        unreachable!("filled_data makes an object")
    };
    let request = SaveRequest {
        data: fields,
        status: SubmissionStatus::Submitted,
    };
    let outputs = submissions::extract_outputs(tool, &data);
    let mut binds = SaveBinds::new(
        registry,
        tool,
        user,
        organization,
        &data,
        &request,
        &outputs,
    );
    binds.if_match = Some(IfMatch::Any);
    let mut headers = bearer(token);
    headers.push(("If-Match", IfMatch::Any.etag()));
    let body = json!({"data": data, "status": "submitted"}).to_string();
    let settings = fixtures::settings();
    let budget = Budget::for_body(
        body.len(),
        settings.save_burst,
        settings.save_refill_per_minute,
    );
    Call {
        method: "PUT",
        path: format!("/tools/{}/submission", tool.slug),
        headers,
        body: Body::Fixed(body),
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: sql::LOCK_PROGRESS_SQL.to_owned(),
                binds: sql::lock_params(user, tool, None, budget)
                    .map(bind)
                    .to_vec(),
            },
            Statement {
                sql: sql::save_submission(registry, tool).as_str().to_owned(),
                binds: binds.params().map(bind).to_vec(),
            },
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
        // A submit's values take their form's shapes.
        let text = text.join(" ");
        let value = Forms::embedded()
            .tool(&tool.slug)
            .and_then(|form| form.output(&output.key))
            .map_or_else(
                || Value::String(text.clone()),
                |form| form.shape.example(&text),
            );
        data.insert(output.key.clone(), value);
    }
    Value::Object(data)
}

/// A bind of the product's save as pgbench sends it: its text, and the type
/// sqlx sends it as.
fn bind(param: Param<'_>) -> (Bind, &'static str) {
    match param {
        Param::Uuid(v) => (v.map(|v| v.to_string()).into(), "uuid"),
        Param::Text(v) => (v.map(str::to_owned).into(), "text"),
        Param::Bytes(v) => (v.map(|v| format!("\\x{}", hex(v))).into(), "bytea"),
        Param::Int(v) => (v.map(|v| v.to_string()).into(), "int4"),
        Param::Float(v) => (Bind::Value(v.to_string()), "float8"),
        Param::Json(v) => (Bind::Value(v.to_string()), "jsonb"),
        Param::TextArray(v) => (Bind::Value(pg_array(&v)), "text[]"),
        Param::JsonArray(v) => {
            let texts: Vec<String> = v.iter().map(Value::to_string).collect();
            (Bind::Value(pg_array(&texts)), "jsonb[]")
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn a_repeated_submit_sends_if_match_any_and_pgbench_binds_it_too() {
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
        assert!(call.headers.contains(&("If-Match", "*".to_owned())));
        // $8 of the save: 0 is `*`.
        assert_eq!(
            call.statements[2].binds[7],
            (Bind::Value("0".into()), "int4")
        );
    }
}
