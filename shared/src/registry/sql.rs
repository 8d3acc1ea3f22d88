//! The only place SQL text is made at run time. A statement is static text
//! (`&'static str`, written in the code) with the tool schemas it touches
//! filled in as quoted [`SchemaName`]s, which only the validated registry can
//! make; every value stays a bind parameter. The features write their
//! statements as templates and expand them here.

use std::collections::BTreeSet;

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
