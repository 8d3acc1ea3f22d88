//! The only place SQL text is made at run time. A statement is static text
//! (`&'static str`, written in the code) with the tool schemas it touches
//! filled in as quoted [`SchemaName`]s, which only the validated registry can
//! make; every value stays a bind parameter. The features write their
//! statements as templates and expand them here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::{Registry, SchemaName, Tool};

/// A statement made at run time.
pub type Sql = SqlStr;

/// One `union all` branch per schema, for a template's `{branches}`.
pub struct Branches<'a> {
    /// The branch, its `{s}` a schema (quoted) and its `{i}` the branch's
    /// position (0, 1, ...).
    pub each: &'static str,
    /// What stands for the branches when there are none: a query of the same
    /// columns that returns nothing.
    pub none: &'static str,
    pub schemas: Vec<&'a SchemaName>,
}

/// `template` with `{s}` replaced by `schema` (quoted), and `{branches}` by
/// `branches`, joined with `union all`.
pub fn expand(
    template: &'static str,
    schema: Option<&SchemaName>,
    branches: Option<Branches<'_>>,
) -> Sql {
    let mut text = template.to_owned();
    if let Some(branches) = branches {
        let joined = if branches.schemas.is_empty() {
            branches.none.to_owned()
        } else {
            branches
                .schemas
                .iter()
                .enumerate()
                .map(|(i, schema)| {
                    branches
                        .each
                        .replace("{s}", &schema.quoted())
                        .replace("{i}", &i.to_string())
                })
                .collect::<Vec<_>>()
                .join("\n union all\n")
        };
        text = text.replace("{branches}", &joined);
    }
    if let Some(schema) = schema {
        text = text.replace("{s}", &schema.quoted());
    }
    // Only static text, quoted schema names and numbers went in.
    AssertSqlSafe(text).into_sql_str()
}

/// A registry's statements for its tools, each made the first time it is
/// needed and kept with the registry, which fixes its text: making one (its
/// template expanded, the producers found, the branches joined) took a few
/// percent of a read's time in the server.
#[derive(Debug, Default)]
pub struct Kept(Mutex<HashMap<(&'static str, u8), Sql>>);

impl Registry {
    /// The statement `name` of `tool`: what `make` makes, made once for this
    /// registry. `name` tells apart the statements a tool has; each call site
    /// has its own.
    pub fn kept_statement(
        &self,
        name: &'static str,
        tool: &Tool,
        make: impl FnOnce() -> Sql,
    ) -> Sql {
        let key = (name, tool.sprint);
        if let Some(kept) = self.statements.0.lock().expect("not poisoned").get(&key) {
            return kept.clone();
        }
        // Made without the lock held: two first calls may both make it, and
        // the first one kept is used. Shared, so that each use is a reference
        // count, not a copy.
        let made = AssertSqlSafe(Arc::<str>::from(make().as_str())).into_sql_str();
        let mut kept = self.statements.0.lock().expect("not poisoned");
        kept.entry(key).or_insert(made).clone()
    }
}

/// The tool schemas that produce any of `fields`, except `skip`'s, in a fixed
/// order.
pub fn producer_schemas<'a>(
    registry: &'a Registry,
    fields: impl IntoIterator<Item = &'a str>,
    skip: Option<&Tool>,
) -> Vec<&'a SchemaName> {
    fields
        .into_iter()
        .filter_map(|f| registry.producer(f))
        .filter(|p| skip.is_none_or(|s| s.slug != p.slug))
        .map(|p| &p.schema)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_statement_is_made_once_per_tool_and_name_and_is_what_was_made() {
        let registry = Registry::from_json(
            include_str!("../../../config/tool-registry.json"),
            include_str!("../../../config/dependencies.json"),
        )
        .unwrap();
        let (woop, dream) = (
            registry.tool("woop").unwrap(),
            registry.tool("dream").unwrap(),
        );
        let made = std::cell::Cell::new(0);
        let make = |tool: &Tool| {
            made.set(made.get() + 1);
            expand("select 1 from {s}.submissions", Some(&tool.schema), None)
        };
        let first = registry.kept_statement("a", woop, || make(woop));
        let again = registry.kept_statement("a", woop, || make(woop));
        assert_eq!(made.get(), 1);
        assert_eq!(first.as_str(), make(woop).as_str());
        assert_eq!(again.as_str(), first.as_str());
        made.set(0);
        let other_tool = registry.kept_statement("a", dream, || make(dream));
        let other_name = registry.kept_statement("b", woop, || make(dream));
        assert_eq!(made.get(), 2);
        assert_eq!(other_tool.as_str(), make(dream).as_str());
        assert_eq!(other_name.as_str(), make(dream).as_str());
        assert_ne!(other_tool.as_str(), first.as_str());
    }

    #[test]
    fn a_template_gets_its_schema_quoted_and_one_branch_per_producer() {
        let registry = Registry::embedded();
        let woop = registry.tool("woop").unwrap();
        let sql = expand(
            "select * from {s}.submissions, ({branches}) b",
            Some(&woop.schema),
            Some(Branches {
                each: "select {i} as i from {s}.field_outputs",
                none: "select 0 where false",
                schemas: registry.tools()[..2].iter().map(|t| &t.schema).collect(),
            }),
        );
        let first = registry.tools()[0].schema.quoted();
        let second = registry.tools()[1].schema.quoted();
        assert_eq!(
            sql.as_str(),
            format!(
                "select * from {}.submissions, (select 0 as i from {first}.field_outputs\n union all\nselect 1 as i from {second}.field_outputs) b",
                woop.schema.quoted()
            )
        );
        let none = expand(
            "({branches})",
            None,
            Some(Branches {
                each: "x",
                none: "select 0 where false",
                schemas: vec![],
            }),
        );
        assert_eq!(none.as_str(), "(select 0 where false)");
    }
}
