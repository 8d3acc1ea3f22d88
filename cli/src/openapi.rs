//! The OpenAPI document the local server serves at /openapi.json: openapi.yaml,
//! with the save operation made exact for each tool. A submit needs every
//! output's key filled, and which keys those are depends on the tool in the
//! path, which one JSON Schema for `PUT /tools/{slug}/submission` cannot say.
//! So the served document has, instead of `/tools/{slug}/submission`, one
//! `/tools/<slug>/submission` per registry tool (GET as written; PUT with a body
//! schema that requires that tool's keys when `status` is `submitted`, each
//! with its form's shape, `config/tool-forms.json`).
//! Everything else is openapi.yaml as written.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use shared::Registry;
use shared::registry::{Forms, Tool};

const SAVE_PATH: &str = "/tools/{slug}/submission";

/// What `shared::submissions::is_filled` counts as filled: not null, text with
/// a character that is not whitespace (Rust's `char::is_whitespace`, listed
/// out, since a regex's `\s` is a different set), a non-empty list or object,
/// any number or boolean.
fn filled() -> Value {
    json!({
        "anyOf": [
            {
                "type": "string",
                "pattern": "[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
            },
            { "type": "array", "minItems": 1 },
            { "type": "object", "minProperties": 1 },
            { "type": ["number", "boolean"] }
        ]
    })
}

/// A save's body for `tool`: a draft's data is free-form; a submit's fills
/// every output with a value of its form's shape.
fn save_request(tool: &Tool) -> Value {
    let keys: Vec<&str> = tool.outputs.iter().map(|o| o.key.as_str()).collect();
    let form = Forms::embedded().tool(&tool.slug);
    let required: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| {
            let schema = form
                .and_then(|f| f.output(k))
                .map_or_else(filled, |o| o.shape.json_schema());
            ((*k).to_owned(), schema)
        })
        .collect();
    json!({
        "oneOf": [
            {
                "type": "object",
                "required": ["data", "status"],
                "additionalProperties": false,
                "properties": {
                    "data": { "type": "object", "description": "The tool's fields, as far as filled in." },
                    "status": { "const": "draft" }
                }
            },
            {
                "type": "object",
                "required": ["data", "status"],
                "additionalProperties": false,
                "properties": {
                    "data": {
                        "type": "object",
                        "description": "The tool's fields; a submit needs every output's key filled.",
                        "required": keys,
                        "properties": required
                    },
                    "status": { "const": "submitted" }
                }
            }
        ]
    })
}

/// openapi.yaml with one exact save operation per tool.
pub fn document(registry: &Registry) -> Result<Value> {
    let mut spec: Value =
        serde_norway::from_str(include_str!("../../openapi.yaml")).context("openapi.yaml")?;
    let paths = spec["paths"]
        .as_object_mut()
        .context("openapi.yaml has no paths")?;
    let item = paths
        .remove(SAVE_PATH)
        .context("openapi.yaml has no /tools/{slug}/submission")?;
    for tool in registry.tools() {
        let mut concrete = serde_json::Map::new();
        for (method, operation) in item.as_object().into_iter().flatten() {
            let mut operation = operation.clone();
            let id = operation["operationId"].as_str().unwrap_or(method);
            operation["operationId"] = json!(format!("{id}-{}", tool.slug));
            if let Some(parameters) = operation["parameters"].as_array_mut() {
                parameters.retain(|p| p["$ref"] != "#/components/parameters/Slug");
            }
            if method == "put" {
                operation["requestBody"]["content"]["application/json"]["schema"] =
                    save_request(tool);
            }
            concrete.insert(method.clone(), operation);
        }
        paths.insert(
            format!("/tools/{}/submission", tool.slug),
            Value::Object(concrete),
        );
    }
    Ok(spec)
}

/// openapi.yaml, compiled in and served as JSON.
pub fn json() -> Result<Vec<u8>> {
    let spec = document(Registry::embedded())?;
    Ok(serde_json::to_vec(&spec)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_served_as_json_with_every_path() {
        let json: serde_json::Value = serde_json::from_slice(&super::json().unwrap()).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        let paths = json["paths"].as_object().unwrap();
        for route in shared::http::routes::ROUTES {
            // The save path is served once per tool (see openapi.rs).
            let path = route.path.replace("{slug}/submission", "woop/submission");
            assert!(paths.contains_key(&path), "{path}");
        }
    }

    #[test]
    fn each_tool_gets_a_save_operation_requiring_its_own_keys_on_submit() {
        let registry = Registry::embedded();
        let spec = document(registry).unwrap();
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.get(SAVE_PATH).is_none());
        assert!(paths["/tools/woop/submission"].get("get").is_some());
        let woop = &paths["/tools/woop/submission"]["put"];
        assert_eq!(woop["x-fasttrack-function"], "submit-tool");
        let submit = &woop["requestBody"]["content"]["application/json"]["schema"]["oneOf"][1];
        let tool = registry.tool("woop").unwrap();
        let keys: Vec<&str> = tool.outputs.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(submit["properties"]["data"]["required"], json!(keys));
        assert_eq!(
            paths.keys().filter(|p| p.ends_with("/submission")).count(),
            registry.tools().len()
        );
    }

    #[test]
    fn each_save_operation_requires_if_match_on_updates_and_launches_take_a_nonce() {
        let spec = document(Registry::embedded()).unwrap();
        let save = &spec["paths"]["/tools/woop/submission"]["put"];
        assert_eq!(
            save["responses"]["428"]["$ref"],
            "#/components/responses/PreconditionRequired"
        );
        let if_match = save["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "If-Match")
            .unwrap();
        // Not required of a first save, so not required in the schema.
        assert_eq!(if_match["required"], false);
        assert!(if_match["description"].as_str().unwrap().contains("428"));
        let launch = &spec["components"]["schemas"]["Launch"];
        assert_eq!(launch["properties"]["nonce"]["maxLength"], 64);
        assert!(
            !launch["required"]
                .as_array()
                .unwrap()
                .contains(&json!("nonce"))
        );
    }

    #[test]
    fn the_filled_pattern_treats_exactly_rusts_whitespace_as_blank() {
        // Every char Rust calls whitespace is in the pattern's class, so text
        // of only those is not "filled" in the document either.
        let pattern = filled()["anyOf"][0]["pattern"].as_str().unwrap().to_owned();
        let blank: Vec<char> = (0..=0x3000u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
            .collect();
        for c in blank {
            let escaped = format!("\\u{:04X}", c as u32);
            let listed = match c {
                '\t' => pattern.contains("\\t"),
                '\n' => pattern.contains("\\n"),
                '\u{c}' => pattern.contains("\\f"),
                '\r' => pattern.contains("\\r"),
                ' ' => pattern.contains(' '),
                '\u{2000}'..='\u{200A}' => pattern.contains("\\u2000-\\u200A"),
                _ => pattern
                    .to_uppercase()
                    .contains(&escaped.to_uppercase()[2..]),
            };
            assert!(listed, "U+{:04X} is missing from {pattern}", c as u32);
        }
    }
}
