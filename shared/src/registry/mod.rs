//! The tool catalogue: `config/tool-registry.json` and `config/dependencies.json`,
//! compiled into every binary and validated before anything may use it.

pub mod forms;
mod graph;
mod schema_name;
pub mod sql;
mod validate;

use std::collections::HashMap;
use std::sync::OnceLock;

/// Slug or field ID to tool position. foldhash rather than SipHash: these are
/// looked up on every request and built on every cold start.
type Index = HashMap<String, usize, foldhash::fast::RandomState>;

use serde::Deserialize;

pub use forms::{Forms, Shape};
pub use graph::{to_dot, to_mermaid};
pub use schema_name::{InvalidSchemaName, SchemaName};
pub use validate::ConfigProblem;

const REGISTRY_JSON: &str = include_str!("../../../config/tool-registry.json");
const DEPENDENCIES_JSON: &str = include_str!("../../../config/dependencies.json");

/// The validated catalogue. Built only through [`Registry::from_json`], which
/// rejects every inconsistency, so holders can rely on its invariants: slugs and
/// sprints are unique, every dependency has exactly one producer, and the
/// dependency graph is acyclic.
#[derive(Debug)]
pub struct Registry {
    modules: Vec<Module>,
    /// Ordered by sprint.
    tools: Vec<Tool>,
    by_slug: Index,
    producer_of: Index,
    /// The tools' statements, made once ([`Registry::kept_statement`]).
    statements: sql::Kept,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub number: u8,
    pub name: String,
}

#[derive(Debug)]
pub struct Tool {
    pub sprint: u8,
    pub slug: String,
    pub name: String,
    pub module: u8,
    pub optional: bool,
    /// Older names a request may still use for this tool.
    pub aliases: Vec<String>,
    pub schema: SchemaName,
    pub dependencies: Vec<Dependency>,
    pub outputs: Vec<Output>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub field: String,
    pub required: bool,
    /// Slug of the one tool that produces the field.
    pub source: String,
    /// That tool's position in the registry.
    pub source_at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub field: String,
    /// The key in the submission's `data` the value is read from.
    pub key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{file} is not valid: {source}")]
    Json {
        file: &'static str,
        source: serde_json::Error,
    },
    #[error("the tool registry has {} problem(s):\n{}", .0.len(), list(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl RegistryError {
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            Self::Invalid(problems) => problems,
            Self::Json { .. } => &[],
        }
    }
}

impl Registry {
    /// The registry compiled into this binary. Its validity is asserted by the
    /// test suite, so a broken config fails CI rather than a cold start.
    pub fn embedded() -> &'static Registry {
        static EMBEDDED: OnceLock<Registry> = OnceLock::new();
        EMBEDDED.get_or_init(|| {
            Registry::from_json(REGISTRY_JSON, DEPENDENCIES_JSON)
                .unwrap_or_else(|e| panic!("the compiled-in tool registry is invalid: {e}"))
        })
    }

    pub fn from_json(registry_json: &str, dependencies_json: &str) -> Result<Self, RegistryError> {
        let registry: raw::RegistryFile =
            serde_json::from_str(registry_json).map_err(|source| RegistryError::Json {
                file: "config/tool-registry.json",
                source,
            })?;
        let dependencies: raw::DependenciesFile =
            serde_json::from_str(dependencies_json).map_err(|source| RegistryError::Json {
                file: "config/dependencies.json",
                source,
            })?;
        validate::build(registry, dependencies).map_err(RegistryError::Invalid)
    }

    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// Every tool, ordered by sprint.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Looks a tool up by its slug or one of its aliases.
    pub fn tool(&self, slug: &str) -> Option<&Tool> {
        self.by_slug.get(slug).map(|&i| &self.tools[i])
    }

    /// Where the tool with this slug (or alias) is in [`Registry::tools`].
    pub fn position(&self, slug: &str) -> Option<usize> {
        self.by_slug.get(slug).copied()
    }

    /// The tool that produces `field`, if any.
    pub fn producer(&self, field: &str) -> Option<&Tool> {
        self.producer_of.get(field).map(|&i| &self.tools[i])
    }

    /// Tools that need at least one output of `tool`, ordered by sprint.
    pub fn dependents<'a>(&'a self, tool: &'a Tool) -> impl Iterator<Item = &'a Tool> + 'a {
        self.tools
            .iter()
            .filter(move |t| t.dependencies.iter().any(|d| d.source == tool.slug))
    }
}

impl Tool {
    pub fn required_dependencies(&self) -> impl Iterator<Item = &Dependency> {
        self.dependencies.iter().filter(|d| d.required)
    }

    pub fn starts_unlocked(&self) -> bool {
        self.required_dependencies().next().is_none()
    }
}

/// The file formats, as people write them.
mod raw {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, MapAccess, Visitor};

    use super::Module;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RegistryFile {
        pub modules: Vec<Module>,
        pub tools: Vec<Tool>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tool {
        pub sprint: u8,
        pub slug: String,
        pub name: String,
        pub module: u8,
        #[serde(default)]
        pub optional: bool,
        #[serde(default)]
        pub aliases: Vec<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DependenciesFile {
        /// Keyed by tool slug: `{"tools": {slug: {dependencies, outputs}}}`.
        #[serde(deserialize_with = "each_tool_once")]
        pub tools: BTreeMap<String, ToolFields>,
    }

    /// The `tools` object, refusing a slug listed twice: serde's maps keep the
    /// last of two equal keys without a word, which would drop a tool's
    /// dependencies and outputs from a registry that still validates.
    fn each_tool_once<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, ToolFields>, D::Error> {
        struct Tools;
        impl<'de> serde::de::Visitor<'de> for Tools {
            type Value = BTreeMap<String, ToolFields>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object keyed by tool slug")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut tools = BTreeMap::new();
                while let Some((slug, fields)) = map.next_entry::<String, ToolFields>()? {
                    if tools.contains_key(&slug) {
                        return Err(serde::de::Error::custom(format!(
                            "tool `{slug}` is listed twice"
                        )));
                    }
                    tools.insert(slug, fields);
                }
                Ok(tools)
            }
        }
        deserializer.deserialize_map(Tools)
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ToolFields {
        #[serde(default)]
        pub dependencies: Vec<Dependency>,
        #[serde(default)]
        pub outputs: Vec<Output>,
    }

    /// `"a.b.c"` is a required dependency; the long form can make it optional.
    pub type Dependency = FieldOr<DetailedDependency>;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DetailedDependency {
        pub field: String,
        #[serde(default = "yes")]
        pub required: bool,
    }

    /// `"a.b.c"` is read from `data.c`; the long form names another key.
    pub type Output = FieldOr<DetailedOutput>;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DetailedOutput {
        pub field: String,
        pub key: String,
    }

    fn yes() -> bool {
        true
    }

    /// A field ID, or the long form of its entry.
    pub enum FieldOr<T> {
        Field(String),
        Detailed(T),
    }

    /// How a long form is described in an error.
    pub trait LongForm {
        const EXPECTING: &'static str;
    }

    impl LongForm for DetailedDependency {
        const EXPECTING: &'static str = "a field ID or {field, required}";
    }

    impl LongForm for DetailedOutput {
        const EXPECTING: &'static str = "a field ID or {field, key}";
    }

    // A string or an object, told apart by the JSON itself. (`#[serde(untagged)]`
    // would buffer every entry and try each form in turn: a third of a cold
    // start's registry load.)
    impl<'de, T: Deserialize<'de> + LongForm> Deserialize<'de> for FieldOr<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(FieldOrVisitor(PhantomData))
        }
    }

    struct FieldOrVisitor<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de> + LongForm> Visitor<'de> for FieldOrVisitor<T> {
        type Value = FieldOr<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(FieldOr::Field(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(FieldOr::Field(v))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(FieldOr::Detailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_or_output_is_a_field_id_or_its_long_form_and_nothing_else() {
        let registry = r#"{"modules": [{"number": 1, "name": "M"}],
            "tools": [{"sprint": 0, "slug": "a", "name": "A", "module": 1},
                      {"sprint": 1, "slug": "b", "name": "B", "module": 1}]}"#;
        let dependencies = |b: &str| {
            format!(
                r#"{{"tools": {{"a": {{"outputs": ["m.a.x", {{"field": "m.a.y", "key": "why"}}]}}, "b": {b}}}}}"#
            )
        };
        let ok = Registry::from_json(
            registry,
            &dependencies(r#"{"dependencies": ["m.a.x", {"field": "m.a.y", "required": false}]}"#),
        )
        .unwrap();
        let b = ok.tool("b").unwrap();
        assert_eq!(
            b.dependencies
                .iter()
                .map(|d| (d.field.as_str(), d.required))
                .collect::<Vec<_>>(),
            [("m.a.x", true), ("m.a.y", false)]
        );
        assert_eq!(ok.tool("a").unwrap().outputs[1].key, "why");
        for (bad, says) in [
            (
                r#"{"dependencies": [7]}"#,
                "a field ID or {field, required}",
            ),
            (
                r#"{"dependencies": [{"field": "m.a.x", "needed": true}]}"#,
                "unknown field `needed`",
            ),
            (
                r#"{"dependencies": [{"required": true}]}"#,
                "missing field `field`",
            ),
            (r#"{"outputs": [["m.b.z"]]}"#, "a field ID or {field, key}"),
        ] {
            let err = Registry::from_json(registry, &dependencies(bad)).unwrap_err();
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_embedded_registry_is_valid() {
        if let Err(e) = Registry::from_json(REGISTRY_JSON, DEPENDENCIES_JSON) {
            panic!("{e}");
        }
    }

    #[test]
    fn the_embedded_registry_encodes_the_whole_catalogue() {
        let registry = Registry::embedded();
        // One tool per sprint, numbered from 0 without a gap (the count is
        // the registry's: nothing pins it).
        for (position, tool) in registry.tools().iter().enumerate() {
            assert_eq!(usize::from(tool.sprint), position, "{}", tool.slug);
        }
        assert_eq!(registry.modules().len(), 9);
        let outputs: usize = registry.tools().iter().map(|t| t.outputs.len()).sum();
        let edges: usize = registry.tools().iter().map(|t| t.dependencies.len()).sum();
        assert_eq!(outputs, 96);
        assert_eq!(edges, 105);
        let optional: Vec<_> = registry
            .tools()
            .iter()
            .filter(|t| t.optional)
            .map(|t| t.slug.as_str())
            .collect();
        assert_eq!(optional, ["energy", "customer-service", "agile-teams"]);
        let unlocked: Vec<_> = registry
            .tools()
            .iter()
            .filter(|t| t.starts_unlocked())
            .map(|t| t.slug.as_str())
            .collect();
        assert_eq!(unlocked, ["woop"]);
    }

    #[test]
    fn output_keys_default_to_the_last_segment_unless_named() {
        let registry = Registry::embedded();
        let know = registry.tool("know-thyself").unwrap();
        assert_eq!(know.outputs[0].field, "identity.personal_dream");
        assert_eq!(know.outputs[0].key, "dream");
        let woop = registry.tool("woop").unwrap();
        assert_eq!(woop.outputs[0].key, "wish");
        let rtm = registry.tool("route-to-market").unwrap();
        assert_eq!(rtm.outputs[1].key, "rtm_roadmap");
    }

    #[test]
    fn schema_names_are_derived_from_sprint_and_slug() {
        let registry = Registry::embedded();
        let names: Vec<_> = registry.tools().iter().map(|t| t.schema.as_str()).collect();
        assert_eq!(names[0], "sprint_00_woop");
        assert_eq!(names[1], "sprint_01_know_thyself");
        assert_eq!(names[13], "sprint_13_segmentation_target_market");
        assert_eq!(names.last(), Some(&"sprint_30_program_overview"));
    }

    #[test]
    fn old_design_names_are_aliases() {
        let registry = Registry::embedded();
        assert_eq!(registry.tool("identity").unwrap().slug, "know-thyself");
        assert_eq!(registry.tool("vision").unwrap().slug, "dream");
        assert!(registry.tool("sprint_01_know_thyself").is_none());
    }

    #[test]
    fn each_dependency_knows_its_source_tool() {
        let registry = Registry::embedded();
        let dream = registry.tool("dream").unwrap();
        assert!(
            dream
                .dependencies
                .iter()
                .all(|d| d.source == "know-thyself")
        );
        let dependents: Vec<_> = registry
            .dependents(registry.tool("woop").unwrap())
            .map(|t| t.slug.as_str())
            .collect();
        assert_eq!(dependents, ["know-thyself"]);
    }

    /// The longest chain in the catalogue has 18 tools, ending at program-overview.
    #[test]
    fn the_longest_chain_is_eighteen_tools() {
        let registry = Registry::embedded();
        let mut depth: HashMap<&str, usize> = HashMap::new();
        for tool in registry.tools() {
            let d = tool
                .dependencies
                .iter()
                .map(|dep| depth[dep.source.as_str()])
                .max()
                .map_or(1, |d| d + 1);
            depth.insert(&tool.slug, d);
        }
        assert_eq!(depth["program-overview"], 18);
        assert_eq!(depth.values().max(), Some(&18));
    }
}
