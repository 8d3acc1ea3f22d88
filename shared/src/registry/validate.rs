//! Turns the two config files into a [`Registry`], collecting every problem
//! rather than stopping at the first, so one run tells an editor all of them.

use std::collections::{HashMap, HashSet};

use super::{Dependency, Index, Module, Output, Registry, SchemaName, Tool, raw};

/// One inconsistency in the config; each names the tool and the field involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error("module {number} is listed twice")]
    DuplicateModule { number: u8 },
    #[error("tool `{slug}`: its slug must be lowercase words joined by '-'")]
    InvalidSlug { slug: String },
    #[error("tool `{slug}`: the slug is already used by tool `{other}`")]
    DuplicateSlug { slug: String, other: String },
    #[error("tool `{slug}`: sprint {sprint} is already used by tool `{other}`")]
    DuplicateSprint {
        slug: String,
        sprint: u8,
        other: String,
    },
    #[error("tool `{slug}`: sprint {sprint} is outside 0..=99")]
    SprintOutOfRange { slug: String, sprint: u8 },
    #[error("tool `{slug}`: module {module} is not in the module list")]
    UnknownModule { slug: String, module: u8 },
    #[error("tool `{slug}`: {source}")]
    InvalidSchemaName {
        slug: String,
        source: super::InvalidSchemaName,
    },
    #[error("tool `{slug}` has no entry in config/dependencies.json")]
    MissingDependencyEntry { slug: String },
    #[error("config/dependencies.json has an entry for `{slug}`, which the registry does not list")]
    UnknownTool { slug: String },
    #[error("tool `{slug}`: field ID `{field}` does not match {FIELD_ID_PATTERN}")]
    InvalidFieldId { slug: String, field: String },
    #[error(
        "tool `{slug}`: output `{field}` reads data key `{key}`, which must match [a-z][a-z0-9_]*"
    )]
    InvalidOutputKey {
        slug: String,
        field: String,
        key: String,
    },
    #[error("tool `{slug}`: outputs `{field}` and `{other}` both read data key `{key}`")]
    DuplicateOutputKey {
        slug: String,
        field: String,
        other: String,
        key: String,
    },
    #[error("field `{field}` is produced by both `{first}` and `{second}`")]
    FieldProducedTwice {
        field: String,
        first: String,
        second: String,
    },
    #[error("tool `{slug}` lists dependency `{field}` twice")]
    DuplicateDependency { slug: String, field: String },
    #[error("tool `{slug}` depends on `{field}`, which no tool produces")]
    UnproducedDependency { slug: String, field: String },
    #[error("dependency cycle: {}", describe_cycle(.0))]
    Cycle(Vec<(String, String)>),
    #[error(
        "tool `{slug}` (sprint {sprint}) depends on `{field}` from `{source_slug}` (sprint {source_sprint}), which does not come earlier"
    )]
    ProducerNotEarlier {
        slug: String,
        sprint: u8,
        field: String,
        source_slug: String,
        source_sprint: u8,
    },
    #[error(
        "mandatory tool `{slug}` requires `{field}`, produced by optional tool `{source_slug}`; make the dependency optional or the tool mandatory"
    )]
    MandatoryRequiresOptional {
        slug: String,
        field: String,
        source_slug: String,
    },
}

pub const FIELD_ID_PATTERN: &str = "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*){1,3}$";

fn describe_cycle(steps: &[(String, String)]) -> String {
    // Each step is (tool, field it needs from the next tool in the cycle).
    let mut out = String::new();
    for (slug, field) in steps {
        out.push_str(&format!("`{slug}` needs `{field}` from "));
    }
    if let Some((first, _)) = steps.first() {
        out.push_str(&format!("`{first}`"));
    }
    out
}

/// `segment` = `[a-z][a-z0-9_]*`.
fn is_segment(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Two to four segments joined by dots: `org.activities.top5`. One pass over
/// the bytes: every cold start checks the registry's two hundred field IDs.
pub fn is_field_id(s: &str) -> bool {
    let mut segments = 1;
    let mut segment_start = true;
    for b in s.bytes() {
        match b {
            b'.' if !segment_start && segments < 4 => {
                segments += 1;
                segment_start = true;
            }
            b'a'..=b'z' => segment_start = false,
            b'0'..=b'9' | b'_' if !segment_start => {}
            _ => return false,
        }
    }
    !segment_start && segments >= 2
}

/// Lowercase alphanumeric words joined by single hyphens: `know-thyself`.
fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && s.as_bytes()[0].is_ascii_lowercase()
}

pub(super) fn build(
    registry: raw::RegistryFile,
    mut dependencies: raw::DependenciesFile,
) -> Result<Registry, Vec<ConfigProblem>> {
    let mut problems = Vec::new();

    let mut module_numbers = HashSet::new();
    for module in &registry.modules {
        if !module_numbers.insert(module.number) {
            problems.push(ConfigProblem::DuplicateModule {
                number: module.number,
            });
        }
    }

    let mut raw_tools = registry.tools;
    raw_tools.sort_by_key(|t| t.sprint);

    let mut tools = Vec::with_capacity(raw_tools.len());
    let mut by_slug = Index::default();
    // Every slug and alias, with the tool that claimed it first, whether or
    // not that tool is kept: the index above holds only the kept ones.
    let mut claimed: HashMap<String, String> = HashMap::new();
    let mut by_sprint: HashMap<u8, String> = HashMap::new();
    for t in raw_tools {
        let names = std::iter::once(&t.slug).chain(&t.aliases);
        for name in names {
            if !is_slug(name) {
                problems.push(ConfigProblem::InvalidSlug { slug: name.clone() });
            }
            if let Some(other) = claimed.get(name) {
                problems.push(ConfigProblem::DuplicateSlug {
                    slug: name.clone(),
                    other: other.clone(),
                });
            } else {
                claimed.insert(name.clone(), t.slug.clone());
            }
        }
        if t.sprint > 99 {
            problems.push(ConfigProblem::SprintOutOfRange {
                slug: t.slug.clone(),
                sprint: t.sprint,
            });
        }
        if let Some(other) = by_sprint.insert(t.sprint, t.slug.clone()) {
            problems.push(ConfigProblem::DuplicateSprint {
                slug: t.slug.clone(),
                sprint: t.sprint,
                other,
            });
        }
        if !module_numbers.contains(&t.module) {
            problems.push(ConfigProblem::UnknownModule {
                slug: t.slug.clone(),
                module: t.module,
            });
        }
        let schema = match SchemaName::for_tool(t.sprint, &t.slug) {
            Ok(schema) => schema,
            Err(source) => {
                problems.push(ConfigProblem::InvalidSchemaName {
                    slug: t.slug.clone(),
                    source,
                });
                continue;
            }
        };
        let Some(fields) = dependencies.tools.remove(&t.slug) else {
            problems.push(ConfigProblem::MissingDependencyEntry { slug: t.slug });
            continue;
        };
        let (dependencies, outputs) = tool_fields(&t.slug, fields, &mut problems);
        for name in std::iter::once(&t.slug).chain(&t.aliases) {
            by_slug.entry(name.clone()).or_insert(tools.len());
        }
        tools.push(Tool {
            sprint: t.sprint,
            slug: t.slug,
            name: t.name,
            module: t.module,
            optional: t.optional,
            aliases: t.aliases,
            schema,
            dependencies,
            outputs,
        });
    }
    for slug in dependencies.tools.into_keys() {
        problems.push(ConfigProblem::UnknownTool { slug });
    }

    let mut producer_of = Index::default();
    for (i, tool) in tools.iter().enumerate() {
        for output in &tool.outputs {
            if let Some(&first) = producer_of.get(&output.field) {
                problems.push(ConfigProblem::FieldProducedTwice {
                    field: output.field.clone(),
                    first: tools[first].slug.clone(),
                    second: tool.slug.clone(),
                });
            } else {
                producer_of.insert(output.field.clone(), i);
            }
        }
    }

    let slugs: Vec<String> = tools.iter().map(|t| t.slug.clone()).collect();
    let sprints: Vec<u8> = tools.iter().map(|t| t.sprint).collect();
    let optional: Vec<bool> = tools.iter().map(|t| t.optional).collect();
    for (i, tool) in tools.iter_mut().enumerate() {
        for dep in &mut tool.dependencies {
            let Some(&source) = producer_of.get(&dep.field) else {
                problems.push(ConfigProblem::UnproducedDependency {
                    slug: tool.slug.clone(),
                    field: dep.field.clone(),
                });
                continue;
            };
            dep.source = slugs[source].clone();
            dep.source_at = source;
            // A tool needing its own output is reported as a cycle below.
            if source != i && sprints[source] >= tool.sprint {
                problems.push(ConfigProblem::ProducerNotEarlier {
                    slug: tool.slug.clone(),
                    sprint: tool.sprint,
                    field: dep.field.clone(),
                    source_slug: slugs[source].clone(),
                    source_sprint: sprints[source],
                });
            }
            if !tool.optional && dep.required && optional[source] {
                problems.push(ConfigProblem::MandatoryRequiresOptional {
                    slug: tool.slug.clone(),
                    field: dep.field.clone(),
                    source_slug: slugs[source].clone(),
                });
            }
        }
    }
    let edges: Vec<Vec<(usize, &str)>> = tools
        .iter()
        .map(|tool| {
            tool.dependencies
                .iter()
                .filter_map(|dep| Some((*producer_of.get(&dep.field)?, dep.field.as_str())))
                .collect()
        })
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        problems.push(ConfigProblem::Cycle(
            cycle
                .into_iter()
                .map(|(tool, field)| (slugs[tool].clone(), field))
                .collect(),
        ));
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let mut modules: Vec<Module> = registry.modules;
    modules.sort_by_key(|m| m.number);
    Ok(Registry {
        modules,
        tools,
        by_slug,
        producer_of,
        statements: Default::default(),
    })
}

fn tool_fields(
    slug: &str,
    fields: raw::ToolFields,
    problems: &mut Vec<ConfigProblem>,
) -> (Vec<Dependency>, Vec<Output>) {
    let mut dependencies: Vec<Dependency> = Vec::with_capacity(fields.dependencies.len());
    for dep in fields.dependencies {
        let (field, required) = match dep {
            raw::Dependency::Field(field) => (field, true),
            raw::Dependency::Detailed(raw::DetailedDependency { field, required }) => {
                (field, required)
            }
        };
        if !is_field_id(&field) {
            problems.push(ConfigProblem::InvalidFieldId {
                slug: slug.to_owned(),
                field: field.clone(),
            });
        }
        // A handful per tool: a scan beats hashing.
        if dependencies.iter().any(|d| d.field == field) {
            problems.push(ConfigProblem::DuplicateDependency {
                slug: slug.to_owned(),
                field: field.clone(),
            });
        }
        dependencies.push(Dependency {
            field,
            required,
            source: String::new(),
            source_at: 0,
        });
    }

    let mut outputs: Vec<Output> = Vec::with_capacity(fields.outputs.len());
    for output in fields.outputs {
        let (field, key) = match output {
            raw::Output::Field(field) => {
                let key = field.rsplit('.').next().unwrap_or_default().to_owned();
                (field, key)
            }
            raw::Output::Detailed(raw::DetailedOutput { field, key }) => (field, key),
        };
        if !is_field_id(&field) {
            problems.push(ConfigProblem::InvalidFieldId {
                slug: slug.to_owned(),
                field: field.clone(),
            });
        } else if !is_segment(&key) {
            problems.push(ConfigProblem::InvalidOutputKey {
                slug: slug.to_owned(),
                field: field.clone(),
                key: key.clone(),
            });
        }
        if let Some(other) = outputs.iter().find(|o| o.key == key) {
            problems.push(ConfigProblem::DuplicateOutputKey {
                slug: slug.to_owned(),
                field: field.clone(),
                other: other.field.clone(),
                key: key.clone(),
            });
        }
        outputs.push(Output { field, key });
    }
    (dependencies, outputs)
}

/// Depth-first search over tool → producer edges (`edges[tool]`: the tools it
/// needs a field from); returns one cycle as (tool, field it needs from the next
/// tool) steps.
fn find_cycle(edges: &[Vec<(usize, &str)>]) -> Option<Vec<(usize, String)>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        InProgress,
        Done,
    }
    fn visit<'a>(
        node: usize,
        edges: &[Vec<(usize, &'a str)>],
        marks: &mut [Option<Mark>],
        path: &mut Vec<(usize, &'a str)>,
    ) -> Option<Vec<(usize, String)>> {
        marks[node] = Some(Mark::InProgress);
        for &(next, field) in &edges[node] {
            path.push((node, field));
            match marks[next] {
                Some(Mark::InProgress) => {
                    let start = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                    return Some(
                        path[start..]
                            .iter()
                            .map(|&(n, f)| (n, f.to_owned()))
                            .collect(),
                    );
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
            }
            path.pop();
        }
        marks[node] = Some(Mark::Done);
        None
    }
    let mut marks = vec![None; edges.len()];
    for node in 0..edges.len() {
        if marks[node].is_none()
            && let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::is_field_id;

    /// FIELD_ID_PATTERN, spelled out.
    fn matches_pattern(s: &str) -> bool {
        let segments: Vec<&str> = s.split('.').collect();
        (2..=4).contains(&segments.len())
            && segments.iter().all(|seg| {
                let mut bytes = seg.bytes();
                matches!(bytes.next(), Some(b'a'..=b'z'))
                    && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            })
    }

    #[test]
    fn field_ids_are_exactly_what_the_pattern_allows() {
        // Every string of up to six characters over an alphabet that exercises
        // each rule, plus the catalogue's own forms.
        let alphabet = ['a', 'z', '0', '_', '.', 'A', '-'];
        let mut strings = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = strings
                .iter()
                .filter(|s| s.len() == strings.last().map_or(0, String::len))
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
        }
        strings.extend(
            [
                "identity.dream.one_sentence",
                "org.activities.top5",
                "a.b.c.d",
                "a.b.c.d.e",
                "a..b",
                ".a.b",
                "a.b.",
            ]
            .map(String::from),
        );
        for s in &strings {
            assert_eq!(is_field_id(s), matches_pattern(s), "{s:?}");
        }
    }

    use crate::registry::{ConfigProblem, Registry, RegistryError};

    /// A three-tool catalogue: a → b → c, each reading the previous one's output.
    fn catalogue() -> (Value, Value) {
        let registry = json!({
            "modules": [{"number": 0, "name": "Intro"}],
            "tools": [
                {"sprint": 0, "slug": "a", "name": "A", "module": 0},
                {"sprint": 1, "slug": "b", "name": "B", "module": 0},
                {"sprint": 2, "slug": "c", "name": "C", "module": 0},
            ]
        });
        let dependencies = json!({"tools": {
            "a": {"dependencies": [], "outputs": ["m.a.out"]},
            "b": {"dependencies": ["m.a.out"], "outputs": ["m.b.out"]},
            "c": {"dependencies": ["m.b.out"], "outputs": [{"field": "m.c.out", "key": "result"}]},
        }});
        (registry, dependencies)
    }

    fn load(registry: &Value, dependencies: &Value) -> Result<Registry, RegistryError> {
        Registry::from_json(&registry.to_string(), &dependencies.to_string())
    }

    /// Loads a broken catalogue and returns its problems, one message per line.
    fn problems(registry: &Value, dependencies: &Value) -> (Vec<ConfigProblem>, String) {
        match load(registry, dependencies) {
            Ok(_) => panic!("a broken catalogue was accepted"),
            Err(e) => (e.problems().to_vec(), e.to_string()),
        }
    }

    #[test]
    fn the_small_catalogue_is_valid() {
        let (registry, dependencies) = catalogue();
        let loaded = load(&registry, &dependencies).unwrap();
        let c = loaded.tool("c").unwrap();
        assert_eq!(c.outputs[0].key, "result");
        assert_eq!(c.dependencies[0].source, "b");
        assert!(c.dependencies[0].required);
    }

    #[test]
    fn a_duplicate_slug_is_rejected_naming_the_slug() {
        let (mut registry, dependencies) = catalogue();
        registry["tools"][2]["slug"] = json!("b");
        let (found, message) = problems(&registry, &dependencies);
        assert!(
            found
                .iter()
                .any(|p| matches!(p, ConfigProblem::DuplicateSlug { slug, .. } if slug == "b"))
        );
        assert!(
            message.contains("tool `b`: the slug is already used by tool `b`"),
            "{message}"
        );
    }

    #[test]
    fn an_alias_that_clashes_with_a_slug_is_rejected() {
        let (mut registry, dependencies) = catalogue();
        registry["tools"][0]["aliases"] = json!(["c"]);
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("the slug is already used by tool `a`"),
            "{message}"
        );
    }

    #[test]
    fn a_duplicate_sprint_is_rejected_naming_both_tools() {
        let (mut registry, dependencies) = catalogue();
        registry["tools"][2]["sprint"] = json!(1);
        let (found, message) = problems(&registry, &dependencies);
        assert!(
            found
                .iter()
                .any(|p| matches!(p, ConfigProblem::DuplicateSprint { sprint: 1, .. }))
        );
        assert!(
            message.contains("sprint 1 is already used by tool"),
            "{message}"
        );
    }

    #[test]
    fn field_ids_that_break_the_pattern_are_rejected_naming_tool_and_field() {
        for bad in [
            "Identity.dream",
            "identity",
            "identity..dream",
            "a.b.c.d.e",
            "m.a.out-x",
            "1m.a",
            "m.a.",
            "m. a",
        ] {
            let (registry, mut dependencies) = catalogue();
            dependencies["tools"]["c"]["outputs"] = json!([bad]);
            let (found, message) = problems(&registry, &dependencies);
            assert!(
                found.contains(&ConfigProblem::InvalidFieldId {
                    slug: "c".into(),
                    field: bad.into()
                }),
                "{bad:?} was not reported as an invalid field ID: {message}"
            );
            assert!(
                message.contains(&format!("tool `c`: field ID `{bad}` does not match")),
                "{message}"
            );
        }
    }

    #[test]
    fn digits_are_allowed_in_field_ids() {
        let (registry, mut dependencies) = catalogue();
        dependencies["tools"]["c"]["outputs"] = json!(["org.activities.top5", "a.b2.c_3.d4"]);
        assert!(load(&registry, &dependencies).is_ok());
    }

    #[test]
    fn a_field_produced_twice_is_rejected_naming_both_producers() {
        let (registry, mut dependencies) = catalogue();
        dependencies["tools"]["c"]["outputs"] = json!(["m.a.out"]);
        let (found, message) = problems(&registry, &dependencies);
        assert!(found.contains(&ConfigProblem::FieldProducedTwice {
            field: "m.a.out".into(),
            first: "a".into(),
            second: "c".into()
        }));
        assert!(
            message.contains("field `m.a.out` is produced by both `a` and `c`"),
            "{message}"
        );
    }

    #[test]
    fn a_dependency_nothing_produces_is_rejected_naming_tool_and_field() {
        let (registry, mut dependencies) = catalogue();
        dependencies["tools"]["b"]["dependencies"] = json!(["m.nowhere.out"]);
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("tool `b` depends on `m.nowhere.out`, which no tool produces"),
            "{message}"
        );
    }

    #[test]
    fn a_cycle_is_rejected_naming_every_tool_and_field_on_it() {
        let (registry, mut dependencies) = catalogue();
        // a now needs c's output: a → b → c → a.
        dependencies["tools"]["a"]["dependencies"] = json!(["m.c.out"]);
        let (found, message) = problems(&registry, &dependencies);
        let cycle = found
            .iter()
            .find_map(|p| match p {
                ConfigProblem::Cycle(steps) => Some(steps.clone()),
                _ => None,
            })
            .expect("the cycle was not reported");
        let tools: Vec<&str> = cycle.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(tools.len(), 3);
        for (tool, field) in [("a", "m.c.out"), ("b", "m.a.out"), ("c", "m.b.out")] {
            assert!(
                message.contains(&format!("`{tool}` needs `{field}` from")),
                "{message}"
            );
        }
    }

    #[test]
    fn a_tool_needing_its_own_output_is_a_cycle() {
        let (registry, mut dependencies) = catalogue();
        dependencies["tools"]["b"]["dependencies"] = json!(["m.b.out"]);
        let (found, message) = problems(&registry, &dependencies);
        assert!(
            found.iter().any(|p| matches!(p, ConfigProblem::Cycle(_))),
            "{message}"
        );
        assert!(
            message.contains("`b` needs `m.b.out` from `b`"),
            "{message}"
        );
    }

    #[test]
    fn a_producer_must_come_before_its_consumer() {
        let (mut registry, dependencies) = catalogue();
        registry["tools"][0]["sprint"] = json!(5);
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("tool `b` (sprint 1) depends on `m.a.out` from `a` (sprint 5)"),
            "{message}"
        );
    }

    #[test]
    fn a_mandatory_tool_cannot_require_an_optional_tools_output() {
        let (mut registry, mut dependencies) = catalogue();
        registry["tools"][1]["optional"] = json!(true);
        let (found, message) = problems(&registry, &dependencies);
        assert!(found.contains(&ConfigProblem::MandatoryRequiresOptional {
            slug: "c".into(),
            field: "m.b.out".into(),
            source_slug: "b".into()
        }));
        assert!(
            message
                .contains("mandatory tool `c` requires `m.b.out`, produced by optional tool `b`"),
            "{message}"
        );

        // The same dependency marked optional is fine.
        dependencies["tools"]["c"]["dependencies"] =
            json!([{"field": "m.b.out", "required": false}]);
        let loaded = load(&registry, &dependencies).unwrap();
        assert!(loaded.tool("c").unwrap().starts_unlocked());
    }

    #[test]
    fn tools_and_dependency_entries_must_match_one_to_one() {
        let (registry, mut dependencies) = catalogue();
        let entry = dependencies["tools"]["c"].take();
        dependencies["tools"].as_object_mut().unwrap().remove("c");
        dependencies["tools"]["d"] = entry;
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("tool `c` has no entry in config/dependencies.json"),
            "{message}"
        );
        assert!(
            message.contains("entry for `d`, which the registry does not list"),
            "{message}"
        );
    }

    #[test]
    fn bad_slugs_unknown_modules_and_clashing_keys_are_rejected() {
        let (mut registry, mut dependencies) = catalogue();
        registry["tools"][2]["module"] = json!(7);
        dependencies["tools"]["a"]["outputs"] = json!(["m.a.out", "m.x.out"]);
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("tool `c`: module 7 is not in the module list"),
            "{message}"
        );
        assert!(
            message.contains("outputs `m.x.out` and `m.a.out` both read data key `out`"),
            "{message}"
        );

        let (mut registry, dependencies) = catalogue();
        registry["tools"][0]["slug"] = json!("A_b");
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("tool `A_b`: its slug must be lowercase words"),
            "{message}"
        );
    }

    #[test]
    fn a_clash_with_a_tool_that_has_other_problems_names_that_tool() {
        // `b` has no entry in dependencies.json, so it is not kept; `c` claims
        // its slug as an alias. The report names `b`, and nothing panics.
        let (mut registry, mut dependencies) = catalogue();
        dependencies["tools"].as_object_mut().unwrap().remove("b");
        registry["tools"][2]["aliases"] = json!(["b"]);
        let (_, message) = problems(&registry, &dependencies);
        assert!(
            message.contains("tool `b` has no entry in config/dependencies.json"),
            "{message}"
        );
        assert!(
            message.contains("tool `b`: the slug is already used by tool `b`"),
            "{message}"
        );
    }

    #[test]
    fn a_tool_listed_twice_in_dependencies_json_is_rejected() {
        // serde's maps keep the last of two equal keys without a word.
        let (registry, _) = catalogue();
        let dependencies = r#"{"tools": {
            "a": {"dependencies": [], "outputs": ["m.a.out"]},
            "b": {"dependencies": ["m.a.out"], "outputs": ["m.b.out"]},
            "c": {"dependencies": ["m.b.out"], "outputs": ["m.c.out"]},
            "b": {"dependencies": [], "outputs": ["m.b.other"]}
        }}"#;
        let err = Registry::from_json(&registry.to_string(), dependencies).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("config/dependencies.json is not valid"),
            "{message}"
        );
        assert!(message.contains("tool `b` is listed twice"), "{message}");
    }

    #[test]
    fn malformed_json_names_the_file() {
        let err = Registry::from_json("{", "{}").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config/tool-registry.json is not valid")
        );
        let (registry, _) = catalogue();
        let err = Registry::from_json(&registry.to_string(), r#"{"tools": {"a": {"outputs": 3}}}"#)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config/dependencies.json is not valid")
        );
    }
}
