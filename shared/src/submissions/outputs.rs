//! What a submission yields: its outputs, read from `data` by the registry's
//! output keys, and how complete a draft is.

use serde_json::{Map, Value};

use crate::registry::Tool;

/// A value counts as filled unless it is null, blank text, or an empty list or object.
pub fn is_filled(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// The tool's outputs read from `data`, keyed by field ID.
pub fn extract_outputs(tool: &Tool, data: &Value) -> Map<String, Value> {
    tool.outputs
        .iter()
        .filter_map(|o| {
            let value = data.get(&o.key);
            is_filled(value).then(|| (o.field.clone(), value.cloned().unwrap_or_default()))
        })
        .collect()
}

/// The data keys a submit must fill: the keys its outputs are read from.
pub fn missing_keys<'a>(tool: &'a Tool, data: &Map<String, Value>) -> Vec<&'a str> {
    tool.outputs
        .iter()
        .map(|o| o.key.as_str())
        .filter(|key| !is_filled(data.get(*key)))
        .collect()
}

pub fn percentage(tool: &Tool, data: &Map<String, Value>) -> i32 {
    let required = tool.outputs.len();
    if required == 0 {
        return 0;
    }
    let filled = required - missing_keys(tool, data).len();
    (filled * 100 / required) as i32
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::Registry;

    #[test]
    fn blank_values_do_not_count_as_filled() {
        for empty in [
            None,
            Some(json!(null)),
            Some(json!("")),
            Some(json!("  ")),
            Some(json!([])),
            Some(json!({})),
        ] {
            assert!(!is_filled(empty.as_ref()), "{empty:?}");
        }
        for filled in [
            json!("x"),
            json!(0),
            json!(false),
            json!([0]),
            json!({"a": null}),
        ] {
            assert!(is_filled(Some(&filled)), "{filled}");
        }
    }

    #[test]
    fn outputs_are_read_from_their_data_keys() {
        let registry = Registry::embedded();
        let know = registry.tool("know-thyself").unwrap();
        let data =
            json!({"dream": "A bakery", "strengths": {"craft": 5}, "values": [], "extra": 1});
        let outputs = extract_outputs(know, &data);
        assert_eq!(outputs.len(), 2);
        assert_eq!(outputs["identity.personal_dream"], json!("A bakery"));
        assert_eq!(outputs["identity.strengths.matrix"], json!({"craft": 5}));
        let Value::Object(data) = data else {
            unreachable!()
        };
        assert_eq!(missing_keys(know, &data), ["values"]);
        assert_eq!(percentage(know, &data), 66);
    }
}
