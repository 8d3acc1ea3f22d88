//! The tools described as data, for a frontend that renders the program
//! without hard-coding it: `GET /tools` and `GET /tools/{slug}`. Each tool's
//! name, sprint, module, whether it is optional and a one-line description;
//! its outputs (data key, field id, label, help, value shape, all required to
//! submit); its inputs (field id, label, the tool that produces it, whether
//! it is required). From the registry and its forms (`config/tool-forms.json`,
//! [`crate::registry::forms`]), which change only with a deployment: each
//! answer is built once per process, with an ETag, and a matching
//! `If-None-Match` gets a 304.

pub mod handler;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::registry::forms::{Forms, OutputForm, Provenance, Shape};
use crate::registry::{Registry, Tool};

#[derive(Debug, Serialize)]
pub struct ToolView<'a> {
    pub slug: &'a str,
    pub name: &'a str,
    pub sprint: u8,
    pub module: ModuleView<'a>,
    pub optional: bool,
    pub description: &'a str,
    /// The file (and commit) its form was read from.
    pub source: &'a str,
    pub outputs: Vec<OutputView<'a>>,
    pub inputs: Vec<InputView<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ModuleView<'a> {
    pub number: u8,
    pub name: &'a str,
}

#[derive(Debug, Serialize)]
pub struct OutputView<'a> {
    pub key: &'a str,
    pub field: &'a str,
    pub label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<&'a str>,
    pub shape: &'a Shape,
    /// A submit needs every output filled.
    pub required: bool,
    pub label_source: Provenance,
    pub shape_source: Provenance,
}

#[derive(Debug, Serialize)]
pub struct InputView<'a> {
    pub field: &'a str,
    pub label: &'a str,
    pub from_tool: ToolRef<'a>,
    /// The data key of the producing tool's submission it is read from.
    pub from_key: &'a str,
    /// Whether the tool stays locked until it is available.
    pub required: bool,
}

#[derive(Debug, Serialize)]
pub struct ToolRef<'a> {
    pub slug: &'a str,
    pub name: &'a str,
}

/// A tool as the API describes it.
pub fn describe<'a>(registry: &'a Registry, forms: &'a Forms, tool: &'a Tool) -> ToolView<'a> {
    let form = forms.tool(&tool.slug);
    let module = registry
        .modules()
        .iter()
        .find(|m| m.number == tool.module)
        .map_or("", |m| m.name.as_str());
    let outputs = tool
        .outputs
        .iter()
        .map(|output| {
            let described: Option<&OutputForm> = form.and_then(|f| f.output(&output.key));
            OutputView {
                key: &output.key,
                field: &output.field,
                label: described.map_or(output.key.as_str(), |d| d.label.as_str()),
                help: described.and_then(|d| d.help.as_deref()),
                shape: described.map_or(&Shape::LongText, |d| &d.shape),
                required: true,
                label_source: described.map_or(Provenance::Derived, |d| d.label_source),
                shape_source: described.map_or(Provenance::Derived, |d| d.shape_source),
            }
        })
        .collect();
    let inputs = tool
        .dependencies
        .iter()
        .filter_map(|dependency| {
            let producer = registry.tool(&dependency.source)?;
            let output = producer
                .outputs
                .iter()
                .find(|o| o.field == dependency.field)?;
            Some(InputView {
                field: &dependency.field,
                label: forms.input_label(registry, &tool.slug, &dependency.field),
                from_tool: ToolRef {
                    slug: &producer.slug,
                    name: &producer.name,
                },
                from_key: &output.key,
                required: dependency.required,
            })
        })
        .collect();
    ToolView {
        slug: &tool.slug,
        name: &tool.name,
        sprint: tool.sprint,
        module: ModuleView {
            number: tool.module,
            name: module,
        },
        optional: tool.optional,
        description: form.map_or("", |f| f.description.as_str()),
        source: form.map_or("", |f| f.source.as_str()),
        outputs,
        inputs,
    }
}

/// An answer written once: its JSON and its strong ETag (a digest of it).
#[derive(Debug)]
pub struct Described {
    pub json: String,
    pub etag: String,
}

impl Described {
    fn of(value: &impl Serialize) -> Self {
        let json = serde_json::to_string(value).expect("the views serialize");
        let digest = Sha256::digest(json.as_bytes());
        let etag = format!("\"tools-{}\"", hex::encode(&digest[..12]));
        Self { json, etag }
    }
}

#[derive(Serialize)]
struct List<'a> {
    tools: Vec<ToolView<'a>>,
}

/// Every tool, in registry order (the compiled-in registry and forms).
pub fn all() -> &'static Described {
    static ALL: OnceLock<Described> = OnceLock::new();
    ALL.get_or_init(|| {
        let (registry, forms) = (Registry::embedded(), Forms::embedded());
        Described::of(&List {
            tools: registry
                .tools()
                .iter()
                .map(|tool| describe(registry, forms, tool))
                .collect(),
        })
    })
}

/// One tool, by its slug (the compiled-in registry and forms).
pub fn one(slug: &str) -> Option<&'static Described> {
    static EACH: OnceLock<HashMap<String, Described>> = OnceLock::new();
    let each = EACH.get_or_init(|| {
        let (registry, forms) = (Registry::embedded(), Forms::embedded());
        registry
            .tools()
            .iter()
            .map(|tool| {
                (
                    tool.slug.clone(),
                    Described::of(&describe(registry, forms, tool)),
                )
            })
            .collect()
    });
    each.get(slug)
}
