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

/// openapi.yaml's free-form JSON object: keys and values without U+0000.
const JSON_OBJECT: &str = "#/components/schemas/JsonObject";

/// What `shared::submissions::is_filled` counts as filled: not null, text with
/// a character that is not whitespace (Rust's `char::is_whitespace`, listed
/// out, since a regex's `\s` is a different set), a non-empty list or object,
/// any number or boolean. No text holds U+0000 (the body refuses it anywhere).
fn filled() -> Value {
    json!({
        "anyOf": [
            {
                "type": "string",
                "pattern": "^[^\\u0000]*[^\\u0000\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000]*$"
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
                    "data": {
                        "$ref": JSON_OBJECT,
                        "description": "The tool's fields, as far as filled in."
                    },
                    "status": { "const": "draft" }
                }
            },
            {
                "type": "object",
                "required": ["data", "status"],
                "additionalProperties": false,
                "properties": {
                    "data": {
                        "allOf": [{ "$ref": JSON_OBJECT }],
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

    fn openapi_yaml() -> Value {
        serde_norway::from_str(include_str!("../../openapi.yaml")).unwrap()
    }

    #[test]
    fn the_served_document_is_openapi_yaml_but_for_the_per_tool_save_paths() {
        let yaml = openapi_yaml();
        let registry = Registry::embedded();
        let mut served = document(registry).unwrap();
        let template = &yaml["paths"][SAVE_PATH];
        let paths = served["paths"].as_object_mut().unwrap();
        for tool in registry.tools() {
            let path = format!("/tools/{}/submission", tool.slug);
            let item = paths.remove(&path).unwrap_or_else(|| panic!("{path}"));
            // The template's operations, with the slug made part of the path
            // and, for PUT, the body schema made exact for the tool.
            let mut expected = template.clone();
            for (method, operation) in expected.as_object_mut().unwrap() {
                let id = operation["operationId"].as_str().unwrap();
                operation["operationId"] = json!(format!("{id}-{}", tool.slug));
                operation["parameters"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|p| p["$ref"] != "#/components/parameters/Slug");
                if method == "put" {
                    operation["requestBody"]["content"]["application/json"]["schema"] =
                        save_request(tool);
                }
            }
            assert_eq!(item, expected, "{path}");
        }
        paths.insert(SAVE_PATH.to_owned(), template.clone());
        // Every other key, paths included, exactly as openapi.yaml has it.
        assert_eq!(served, yaml);
    }

    /// Text no schema may let through: PostgreSQL cannot store U+0000, so the
    /// body refuses it in any string or key (422 `invalid_text`), and headers
    /// and query parameters never carry it either.
    const NUL_PROBES: &[&str] = &["\0", "a\0", "\0a", "a\0b", "1\0", "\"1\"\0", "a\0@b.c"];

    /// Keywords that make a schema more than "any JSON value".
    const CONSTRAINING: &[&str] = &[
        "type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const", "not",
    ];

    fn types(schema: &Value) -> Vec<&str> {
        match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Why a string schema admits U+0000, if it does.
    fn string_admits_nul(schema: &Value) -> Option<String> {
        if matches!(schema["format"].as_str(), Some("uuid" | "date-time")) {
            return None;
        }
        let nul_free = |v: &Value| v.as_str().is_none_or(|s| !s.contains('\0'));
        if let Some(values) = schema["enum"].as_array() {
            return (!values.iter().all(nul_free)).then(|| "an enum value holds U+0000".into());
        }
        if let Some(value) = schema.get("const") {
            return (!nul_free(value)).then(|| "its const holds U+0000".into());
        }
        let Some(pattern) = schema["pattern"].as_str() else {
            return Some(
                "no pattern, format, enum or const excludes U+0000: add pattern \"^[^\\\\u0000]*$\""
                    .into(),
            );
        };
        if !(pattern.starts_with('^') && pattern.ends_with('$')) {
            return Some(format!(
                "pattern {pattern:?} is not anchored (^...$), so text around a match may hold U+0000"
            ));
        }
        let regex = regex_lite::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let mut probes: Vec<String> = NUL_PROBES.iter().map(|p| (*p).to_owned()).collect();
        if let Some(example) = schema["example"].as_str() {
            probes.push(format!("{example}\0"));
            probes.push(format!("\0{example}"));
        }
        probes
            .iter()
            .find(|p| regex.is_match(p))
            .map(|p| format!("pattern {pattern:?} matches {p:?}"))
    }

    /// Every schema in `schema` that admits U+0000 in a string or a key. A
    /// value position (a property, items, additionalProperties, a parameter's
    /// or body's schema) must say what it holds: free-form JSON is
    /// `#/components/schemas/JsonValue` or `JsonObject`. Branches of
    /// allOf/anyOf/oneOf/if/then/else/not are checked for strings only, as
    /// they narrow a schema that says the rest.
    fn nul_problems(schema: &Value, path: &str, value_position: bool, found: &mut Vec<String>) {
        let Some(map) = schema.as_object() else {
            if value_position && schema == &json!(true) {
                found.push(format!("{path}: `true` admits any JSON; use JsonValue"));
            }
            return;
        };
        let types = types(schema);
        if types.contains(&"string")
            && let Some(problem) = string_admits_nul(schema)
        {
            found.push(format!("{path}: {problem}"));
        }
        if value_position && !CONSTRAINING.iter().any(|k| map.contains_key(*k)) {
            found.push(format!("{path}: admits any JSON value; use JsonValue"));
        }
        if value_position && types.contains(&"object") && !map.contains_key("properties") {
            let closed = map.get("additionalProperties") == Some(&json!(false));
            let described =
                map.contains_key("additionalProperties") && map.contains_key("propertyNames");
            if !closed && !described {
                found.push(format!("{path}: a free-form object; use JsonObject"));
            }
        }
        for key in ["items", "additionalProperties", "propertyNames"] {
            if let Some(inner) = map.get(key) {
                nul_problems(inner, &format!("{path}/{key}"), true, found);
            }
        }
        for (name, inner) in map
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            nul_problems(inner, &format!("{path}/properties/{name}"), true, found);
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            for (i, inner) in map
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                nul_problems(inner, &format!("{path}/{key}/{i}"), false, found);
            }
        }
        for key in ["not", "if", "then", "else"] {
            if let Some(inner) = map.get(key) {
                nul_problems(inner, &format!("{path}/{key}"), false, found);
            }
        }
    }

    /// The schemas that admit U+0000 on purpose: a webhook delivery's members
    /// that the service neither reads nor stores as sent.
    const TOLERATED: [&str; 3] = ["DeliveryValue", "DeliveryObject", "DeliveryText"];

    /// Every schema of an OpenAPI document: each `schema` (of a parameter,
    /// header or media type) and each of components.schemas.
    fn document_nul_problems(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let here = format!("{path}/{key}");
                    if key == "schema" {
                        nul_problems(inner, &here, true, found);
                    } else if here == "/components/schemas" {
                        for (name, schema) in inner.as_object().unwrap() {
                            // A LearnWorlds delivery's unread members: the
                            // route takes them as LearnWorlds sends them
                            // (issue: be strict in what is stored, tolerant
                            // elsewhere), and the spec says so.
                            if TOLERATED.contains(&name.as_str()) {
                                continue;
                            }
                            nul_problems(schema, &format!("{here}/{name}"), true, found);
                        }
                    } else {
                        document_nul_problems(inner, &here, found);
                    }
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    document_nul_problems(inner, &format!("{path}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_schema_in_openapi_yaml_or_the_served_document_admits_u0000() {
        for (name, spec) in [
            ("openapi.yaml", openapi_yaml()),
            ("/openapi.json", document(Registry::embedded()).unwrap()),
        ] {
            let mut found = Vec::new();
            document_nul_problems(&spec, "", &mut found);
            assert!(found.is_empty(), "{name} admits U+0000 at: {found:#?}");
        }
    }

    /// Every `$ref` to a component schema in `value`.
    fn refs<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    match (key.as_str(), inner.as_str()) {
                        ("$ref", Some(target)) => {
                            found.extend(target.strip_prefix("#/components/schemas/"));
                        }
                        _ => refs(inner, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| refs(i, found)),
            _ => {}
        }
    }

    /// Objects in `schema` that take members besides their `properties`
    /// without saying what those are: the service refuses U+0000 in them too.
    /// Not within allOf/anyOf/oneOf/if/then/else/not, which narrow a schema
    /// that says it.
    fn open_objects(schema: &Value, path: &str, found: &mut Vec<String>) {
        let Some(map) = schema.as_object() else {
            return;
        };
        if map.contains_key("properties") && !map.contains_key("additionalProperties") {
            found.push(format!(
                "{path}: set additionalProperties (false, or JsonValue with propertyNames Key)"
            ));
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = map.get(key) {
                open_objects(inner, &format!("{path}/{key}"), found);
            }
        }
        for (name, inner) in map
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            open_objects(inner, &format!("{path}/properties/{name}"), found);
        }
    }

    #[test]
    fn every_object_a_request_body_may_hold_says_what_its_other_members_are() {
        for (name, spec) in [
            ("openapi.yaml", openapi_yaml()),
            ("/openapi.json", document(Registry::embedded()).unwrap()),
        ] {
            let mut found = Vec::new();
            let mut components = Vec::new();
            for (path, item) in spec["paths"].as_object().unwrap() {
                for (method, operation) in item.as_object().unwrap() {
                    for (media, content) in operation["requestBody"]["content"]
                        .as_object()
                        .into_iter()
                        .flatten()
                    {
                        let schema = &content["schema"];
                        open_objects(schema, &format!("{path}/{method}/{media}"), &mut found);
                        refs(schema, &mut components);
                    }
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            while let Some(component) = components.pop() {
                if seen.insert(component) {
                    let schema = &spec["components"]["schemas"][component];
                    assert!(schema.is_object(), "{component}");
                    open_objects(
                        schema,
                        &format!("/components/schemas/{component}"),
                        &mut found,
                    );
                    refs(schema, &mut components);
                }
            }
            assert!(
                seen.contains("WebhookEnvelope") && seen.contains("JsonValue"),
                "{seen:?}"
            );
            assert!(found.is_empty(), "{name}: {found:#?}");
        }
    }

    #[test]
    fn the_nul_check_finds_what_it_should() {
        let mut found = Vec::new();
        let loose = json!({
            "type": "object",
            "properties": {
                "plain": { "type": "string" },
                "nullable": { "type": ["string", "null"], "maxLength": 3 },
                "unanchored": { "type": "string", "pattern": "\\S" },
                // `\S` matches U+0000 itself.
                "nul_as_text": { "type": "string", "pattern": "^[^\\u0000]*\\S[^\\u0000]*$" },
                "dotted": { "type": "string", "pattern": "^.+$" },
                "free": { "type": "object" },
                "any": { "description": "anything" },
                "branch": { "oneOf": [{ "type": "null" }, { "type": "string" }] },
                "fine": { "type": "string", "pattern": "^[^\\u0000]*$" },
                "id": { "type": "string", "format": "uuid" },
                "status": { "type": "string", "enum": ["draft"] },
                "json": { "$ref": "#/components/schemas/JsonValue" }
            }
        });
        nul_problems(&loose, "", true, &mut found);
        let flagged: Vec<&str> = found
            .iter()
            .map(|f| {
                f.split(':')
                    .next()
                    .unwrap()
                    .trim_start_matches("/properties/")
            })
            .collect();
        assert_eq!(
            flagged,
            [
                "any",
                "branch/oneOf/1",
                "dotted",
                "free",
                "nul_as_text",
                "nullable",
                "plain",
                "unanchored"
            ],
            "{found:#?}"
        );
    }
}
