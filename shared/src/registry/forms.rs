//! What each tool's form holds: `config/tool-forms.json`, beside the registry
//! and checked against it. For every tool a one-line description; for each of
//! its outputs a label, optional help text and the shape its value takes; and
//! labels for the inputs it shows from earlier tools. `GET /tools` serves it,
//! and a submit is checked against the shapes (drafts stay free-form: they are
//! the form's state while it is filled in).
//!
//! The content comes from the program's own material, each entry naming its
//! source (the file's `$comment` says which); nothing here is made up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Registry;

const FORMS_JSON: &str = include_str!("../../../config/tool-forms.json");

/// A string without U+0000 (ECMA-262 regex, as JSON Schema's `pattern`).
const NO_NUL: &str = "^[^\\u0000]*$";

/// A string without U+0000 that has a character other than whitespace
/// (Rust's `char::is_whitespace`, listed out: what a submit counts as filled).
const FILLED_TEXT: &str = "^[^\\u0000]*[^\\u0000\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000]*$";

/// The value an output holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Shape {
    /// One line of text.
    Text,
    /// Text of any length.
    LongText,
    /// A number.
    Number,
    /// A list of values of one shape.
    List { items: Box<Shape> },
    /// Rows, each an object whose keys are among the columns'.
    Table { columns: Vec<Column> },
    /// One of the options.
    Choice { options: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub key: String,
    pub label: String,
    /// The values a cell may hold, when the column is a choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
}

/// Where a label or a shape was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// The original tool page.
    Page,
    /// The program's question bank.
    QuestionBank,
    /// Made from the id or the question type: no source showed it.
    Derived,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputForm {
    pub key: String,
    pub field: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    pub shape: Shape,
    pub label_source: Provenance,
    pub shape_source: Provenance,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolForm {
    pub slug: String,
    pub description: String,
    pub description_source: String,
    /// The file (and commit) the form was read from.
    pub source: String,
    pub outputs: Vec<OutputForm>,
    /// Labels the tool shows for inputs from earlier tools, by field id; an
    /// input without one shows its producing output's label.
    #[serde(default)]
    pub input_labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormsFile {
    #[serde(rename = "$comment")]
    _comment: Value,
    tools: Vec<ToolForm>,
}

/// Every tool's form, in registry order, checked against the registry.
#[derive(Debug)]
pub struct Forms {
    tools: Vec<ToolForm>,
    by_slug: HashMap<String, usize>,
    /// Each registry tool's dependencies' labels ([`Forms::input_label`]),
    /// by the tool's position and the dependency's: a progress answer
    /// names the inputs of every locked tool.
    dependency_labels: Vec<Vec<Label>>,
}

/// A label, and the same as a JSON string (quoted and escaped), made once.
#[derive(Debug)]
pub struct Label {
    pub text: String,
    pub json: String,
}

impl Label {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            json: serde_json::to_string(text).expect("a string serializes"),
        }
    }
}

impl Forms {
    /// The forms compiled into this binary, checked against the compiled-in
    /// registry (the test suite asserts both, so a broken file fails CI).
    pub fn embedded() -> &'static Forms {
        static EMBEDDED: OnceLock<Forms> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            Forms::from_json(FORMS_JSON, Registry::embedded()).unwrap_or_else(|problems| {
                panic!(
                    "config/tool-forms.json is invalid:\n  - {}",
                    problems.join("\n  - ")
                )
            })
        })
    }

    /// Reads and checks the file against `registry`, listing every problem.
    pub fn from_json(json: &str, registry: &Registry) -> Result<Forms, Vec<String>> {
        let file: FormsFile = serde_json::from_str(json)
            .map_err(|e| vec![format!("config/tool-forms.json is not valid: {e}")])?;
        let mut problems = Vec::new();
        let mut by_slug = HashMap::new();
        for (i, form) in file.tools.iter().enumerate() {
            if by_slug.insert(form.slug.clone(), i).is_some() {
                problems.push(format!("tool `{}` is listed twice", form.slug));
            }
            match registry.tool(&form.slug) {
                Some(tool) if tool.slug == form.slug => check_tool(form, tool, &mut problems),
                _ => problems.push(format!(
                    "tool `{}` is not in the registry (by its slug)",
                    form.slug
                )),
            }
        }
        for tool in registry.tools() {
            if !by_slug.contains_key(&tool.slug) {
                problems.push(format!("tool `{}` has no form", tool.slug));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut tools = file.tools;
        tools.sort_by_key(|f| registry.position(&f.slug));
        let by_slug = tools
            .iter()
            .enumerate()
            .map(|(i, f)| (f.slug.clone(), i))
            .collect();
        let mut forms = Forms {
            tools,
            by_slug,
            dependency_labels: Vec::new(),
        };
        forms.dependency_labels = registry
            .tools()
            .iter()
            .map(|tool| {
                tool.dependencies
                    .iter()
                    .map(|d| Label::new(forms.input_label(registry, &tool.slug, &d.field)))
                    .collect()
            })
            .collect();
        Ok(forms)
    }

    /// The label of dependency `dependency_at` of the tool at `tool_at` in
    /// the registry these forms were checked against: what
    /// [`Forms::input_label`] gives for it, without a lookup.
    pub fn dependency_label(&self, tool_at: usize, dependency_at: usize) -> &Label {
        &self.dependency_labels[tool_at][dependency_at]
    }

    pub fn tool(&self, slug: &str) -> Option<&ToolForm> {
        self.by_slug.get(slug).map(|&i| &self.tools[i])
    }

    /// The label `tool` shows for its input `field`: its own label for it,
    /// else the producing output's, else the field id.
    pub fn input_label<'a>(
        &'a self,
        registry: &'a Registry,
        tool: &str,
        field: &'a str,
    ) -> &'a str {
        self.tool(tool)
            .and_then(|f| f.input_labels.get(field))
            .or_else(|| {
                let producer = registry.producer(field)?;
                let key = &producer.outputs.iter().find(|o| o.field == field)?.key;
                self.tool(&producer.slug)?.output(key).map(|o| &o.label)
            })
            .map_or(field, String::as_str)
    }

    pub fn tools(&self) -> &[ToolForm] {
        &self.tools
    }
}

fn check_tool(form: &ToolForm, tool: &super::Tool, problems: &mut Vec<String>) {
    let slug = &form.slug;
    if form.description.trim().is_empty() {
        problems.push(format!("tool `{slug}`: the description is empty"));
    }
    let declared: HashSet<(&str, &str)> = form
        .outputs
        .iter()
        .map(|o| (o.key.as_str(), o.field.as_str()))
        .collect();
    let registered: HashSet<(&str, &str)> = tool
        .outputs
        .iter()
        .map(|o| (o.key.as_str(), o.field.as_str()))
        .collect();
    for (key, field) in registered.difference(&declared) {
        problems.push(format!(
            "tool `{slug}`: output `{field}` (data key `{key}`) has no form entry"
        ));
    }
    for (key, field) in declared.difference(&registered) {
        problems.push(format!(
            "tool `{slug}`: form entry `{field}` (data key `{key}`) is not an output of the tool in config/dependencies.json"
        ));
    }
    if declared.len() != form.outputs.len() {
        problems.push(format!("tool `{slug}`: an output is listed twice"));
    }
    for output in &form.outputs {
        if output.label.trim().is_empty() {
            problems.push(format!(
                "tool `{slug}`: output `{}` has no label",
                output.field
            ));
        }
        if let Err(problem) = output.shape.validate() {
            problems.push(format!(
                "tool `{slug}`: output `{}`: {problem}",
                output.field
            ));
        }
    }
    for (field, label) in &form.input_labels {
        if !tool.dependencies.iter().any(|d| &d.field == field) {
            problems.push(format!(
                "tool `{slug}`: input label for `{field}`, which the tool does not read"
            ));
        }
        if label.trim().is_empty() {
            problems.push(format!("tool `{slug}`: input `{field}` has an empty label"));
        }
    }
}

impl Shape {
    /// A shape's own consistency: columns and options that can be filled.
    fn validate(&self) -> Result<(), String> {
        match self {
            Shape::Text | Shape::LongText | Shape::Number => Ok(()),
            Shape::List { items } => match **items {
                Shape::Text | Shape::LongText | Shape::Number | Shape::Choice { .. } => {
                    items.validate()
                }
                _ => Err("a list holds text, numbers or choices".into()),
            },
            Shape::Table { columns } => {
                let mut keys = HashSet::new();
                if columns.is_empty() {
                    return Err("a table needs columns".into());
                }
                for column in columns {
                    if column.key.is_empty() || !keys.insert(column.key.as_str()) {
                        return Err(format!("column `{}` is empty or repeated", column.key));
                    }
                    if column.options.as_ref().is_some_and(Vec::is_empty) {
                        return Err(format!("column `{}` has no options", column.key));
                    }
                }
                Ok(())
            }
            Shape::Choice { options } if options.is_empty() => Err("a choice needs options".into()),
            Shape::Choice { .. } => Ok(()),
        }
    }

    /// What the shape expects, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Shape::Text | Shape::LongText => "text".into(),
            Shape::Number => "a number".into(),
            Shape::List { items } => format!("a list of {}", items.describe()),
            Shape::Table { columns } => format!(
                "a list of rows, each an object with keys among {}",
                columns
                    .iter()
                    .map(|c| format!("`{}`", c.key))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Shape::Choice { options } => format!("one of {options:?}"),
        }
    }

    /// Whether `value` has this shape. Null stands for "not filled" anywhere
    /// (whether a submit needs the output filled is checked apart).
    pub fn admits(&self, value: &Value) -> bool {
        match (self, value) {
            (_, Value::Null) => true,
            (Shape::Text | Shape::LongText, Value::String(_)) => true,
            (Shape::Number, Value::Number(_)) => true,
            (Shape::Choice { options }, Value::String(s)) => options.iter().any(|o| o == s),
            (Shape::List { items }, Value::Array(values)) => {
                values.iter().all(|v| !v.is_null() && items.admits(v))
            }
            (Shape::Table { columns }, Value::Array(rows)) => rows.iter().all(|row| {
                let Value::Object(cells) = row else {
                    return false;
                };
                cells.iter().all(|(key, cell)| {
                    let Some(column) = columns.iter().find(|c| &c.key == key) else {
                        return false;
                    };
                    match (cell, &column.options) {
                        (Value::String(s), Some(options)) => {
                            s.is_empty() || options.iter().any(|o| o == s)
                        }
                        (Value::Null | Value::String(_) | Value::Number(_) | Value::Bool(_), _) => {
                            true
                        }
                        _ => false,
                    }
                })
            }),
            _ => false,
        }
    }

    /// The shape as a JSON Schema (2020-12) of a filled value: text with a
    /// character that is not whitespace, a list or table with an item. No
    /// string admits U+0000, which the service refuses everywhere.
    pub fn json_schema(&self) -> Value {
        match self {
            Shape::Text | Shape::LongText => json!({ "type": "string", "pattern": FILLED_TEXT }),
            Shape::List { items } => json!({
                "type": "array",
                "minItems": 1,
                "items": items.item_schema(),
            }),
            _ => self.item_schema(),
        }
    }

    /// The shape as a JSON Schema of a value inside a list: a list is filled
    /// when it has an item, whatever the item holds.
    fn item_schema(&self) -> Value {
        match self {
            Shape::Text | Shape::LongText => json!({ "type": "string", "pattern": NO_NUL }),
            Shape::Number => json!({ "type": "number" }),
            Shape::Choice { options } => json!({ "enum": options }),
            Shape::List { items } => json!({
                "type": "array",
                "items": items.item_schema(),
            }),
            Shape::Table { columns } => {
                let cells: serde_json::Map<String, Value> = columns
                    .iter()
                    .map(|c| {
                        let cell = match &c.options {
                            Some(options) => json!({ "anyOf": [
                                { "enum": options.iter().map(String::as_str).chain([""]).collect::<Vec<_>>() },
                                { "type": ["number", "boolean", "null"] },
                            ]}),
                            None => json!({ "anyOf": [
                                { "type": "string", "pattern": NO_NUL },
                                { "type": ["number", "boolean", "null"] },
                            ]}),
                        };
                        (c.key.clone(), cell)
                    })
                    .collect();
                json!({
                    "type": "array",
                    "minItems": 1,
                    "items": { "type": "object", "additionalProperties": false, "properties": cells },
                })
            }
        }
    }

    /// A filled value of this shape, its text made of `text`: for tests, the
    /// demo and the benchmark.
    pub fn example(&self, text: &str) -> Value {
        match self {
            Shape::Text | Shape::LongText => Value::String(text.to_owned()),
            Shape::Number => Value::from(text.len()),
            Shape::Choice { options } => Value::String(options[0].clone()),
            Shape::List { items } => Value::Array(vec![items.example(text)]),
            Shape::Table { columns } => {
                let row = columns
                    .iter()
                    .map(|c| {
                        let cell = match &c.options {
                            Some(options) => Value::String(options[0].clone()),
                            None => Value::String(text.to_owned()),
                        };
                        (c.key.clone(), cell)
                    })
                    .collect();
                Value::Array(vec![Value::Object(row)])
            }
        }
    }
}

impl ToolForm {
    pub fn output(&self, key: &str) -> Option<&OutputForm> {
        self.outputs.iter().find(|o| o.key == key)
    }

    /// Data that fills every output with a value of its shape, the text in it
    /// `"<key> for <slug>"`.
    pub fn example_data(&self) -> Value {
        Value::Object(
            self.outputs
                .iter()
                .map(|o| {
                    let text = format!("{} for {}", o.key, self.slug);
                    (o.key.clone(), o.shape.example(&text))
                })
                .collect(),
        )
    }

    /// The outputs in `data` whose value does not have their shape: each key
    /// with what it expects. Keys that are no output are left alone (the form
    /// may keep state of its own beside them).
    pub fn misshapen(&self, data: &Value) -> Vec<(String, String)> {
        self.outputs
            .iter()
            .filter_map(|o| {
                let value = data.get(&o.key)?;
                (!o.shape.admits(value)).then(|| (o.key.clone(), o.shape.describe()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_forms_cover_every_tool_and_output_of_the_registry() {
        let forms = Forms::embedded();
        let registry = Registry::embedded();
        assert_eq!(forms.tools().len(), registry.tools().len());
        for (form, tool) in forms.tools().iter().zip(registry.tools()) {
            assert_eq!(form.slug, tool.slug);
            assert_eq!(form.outputs.len(), tool.outputs.len(), "{}", tool.slug);
            assert!(
                form.misshapen(&form.example_data()).is_empty(),
                "{}",
                tool.slug
            );
        }
    }

    #[test]
    fn each_dependency_label_kept_by_position_is_the_label_looked_up_by_name() {
        let (forms, registry) = (Forms::embedded(), Registry::embedded());
        let mut labels = 0;
        for (at, tool) in registry.tools().iter().enumerate() {
            for (i, dependency) in tool.dependencies.iter().enumerate() {
                let label = forms.dependency_label(at, i);
                assert_eq!(
                    label.text,
                    forms.input_label(registry, &tool.slug, &dependency.field),
                    "{} needs {}",
                    tool.slug,
                    dependency.field
                );
                assert_eq!(label.json, serde_json::to_string(&label.text).unwrap());
                assert_eq!(
                    registry.tools()[dependency.source_at].slug,
                    dependency.source
                );
                labels += 1;
            }
        }
        assert!(labels > 30, "only {labels} dependencies");
    }

    #[test]
    fn a_form_that_disagrees_with_the_registry_is_refused_with_every_problem() {
        let mut file: Value = serde_json::from_str(FORMS_JSON).unwrap();
        let tools = file["tools"].as_array_mut().unwrap();
        tools[0]["outputs"].as_array_mut().unwrap().pop();
        tools[1]["outputs"][0]["label"] = json!(" ");
        tools[2]["outputs"][0]["shape"] = json!({"type": "table", "columns": []});
        tools.pop();
        let problems = Forms::from_json(&file.to_string(), Registry::embedded()).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("has no form entry")));
        assert!(problems.iter().any(|p| p.contains("has no label")));
        assert!(problems.iter().any(|p| p.contains("a table needs columns")));
        assert!(problems.iter().any(|p| p.ends_with("has no form")));
    }

    #[test]
    fn values_are_checked_against_their_shape() {
        let table = Shape::Table {
            columns: vec![
                Column {
                    key: "name".into(),
                    label: "Name".into(),
                    options: None,
                },
                Column {
                    key: "level".into(),
                    label: "Level".into(),
                    options: Some(vec!["low".into(), "high".into()]),
                },
            ],
        };
        assert!(table.admits(&json!([{"name": "Ana", "level": "high"}, {"name": 3}])));
        assert!(!table.admits(&json!([{"name": "Ana", "level": "medium"}])));
        assert!(!table.admits(&json!([{"nom": "Ana"}])));
        assert!(!table.admits(&json!("Ana")));
        assert!(!table.admits(&json!([["Ana"]])));
        let list = Shape::List {
            items: Box::new(Shape::Text),
        };
        assert!(list.admits(&json!(["a", "b"])));
        assert!(!list.admits(&json!(["a", 2])));
        assert!(!list.admits(&json!("not a list")));
        assert!(Shape::Text.admits(&json!("x")));
        assert!(!Shape::Text.admits(&json!(12345)));
        assert!(!Shape::Number.admits(&json!("12")));
        assert!(Shape::Number.admits(&json!(12.5)));
    }
}
