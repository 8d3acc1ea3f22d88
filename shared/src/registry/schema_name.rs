use std::fmt;

/// The PostgreSQL schema of one tool, `sprint_{NN}_{slug with _}`.
///
/// Only the validated registry can build one (the constructor is private to
/// `registry`), so every schema name that reaches SQL was derived from the
/// compiled-in config, never from a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaName(String);

/// PostgreSQL truncates identifiers longer than this (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid tool schema name: {reason}")]
pub struct InvalidSchemaName {
    pub name: String,
    pub reason: &'static str,
}

impl SchemaName {
    pub(super) fn for_tool(sprint: u8, slug: &str) -> Result<Self, InvalidSchemaName> {
        Self::parse(&format!("sprint_{sprint:02}_{}", slug.replace('-', "_")))
    }

    /// Accepts exactly `^sprint_[0-9]{2}_[a-z0-9_]+$` within 63 bytes.
    fn parse(name: &str) -> Result<Self, InvalidSchemaName> {
        let invalid = |reason| InvalidSchemaName {
            name: name.to_owned(),
            reason,
        };
        if name.len() > MAX_IDENTIFIER_BYTES {
            return Err(invalid("longer than 63 bytes"));
        }
        let rest = name
            .strip_prefix("sprint_")
            .ok_or_else(|| invalid("does not start with `sprint_`"))?;
        let (digits, slug) = rest
            .split_at_checked(2)
            .ok_or_else(|| invalid("has no two-digit sprint number"))?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("has no two-digit sprint number"));
        }
        let slug = slug
            .strip_prefix('_')
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("has no slug after the sprint number"))?;
        if !slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid("may only contain a-z, 0-9 and _"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier, for the one place it meets SQL text.
    pub fn quoted(&self) -> String {
        // parse() admits no `"`, but quoting stays correct even if that changes.
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_slug_becomes_a_quoted_schema_name() {
        let name = SchemaName::for_tool(1, "know-thyself").unwrap();
        assert_eq!(name.as_str(), "sprint_01_know_thyself");
        assert_eq!(name.quoted(), "\"sprint_01_know_thyself\"");
    }

    #[test]
    fn hostile_input_cannot_become_a_schema_name() {
        let hostile = [
            "x\"; drop schema shared; --",
            "sprint_01_x\"; drop schema shared; --",
            "sprint_01_x; drop schema shared",
            "sprint_01_Identity",
            "SPRINT_01_identity",
            "sprint_01_identité",
            "sprint_01_identity\u{0}",
            "sprint_01_know-thyself",
            "sprint_1_identity",
            "sprint_ab_identity",
            "sprint_01_",
            "sprint_01",
            "sprint_01identity",
            "",
        ];
        for name in hostile {
            assert!(
                SchemaName::parse(name).is_err(),
                "{name:?} was accepted as a schema name"
            );
        }
    }

    #[test]
    fn a_name_over_63_bytes_is_rejected_and_63_is_accepted() {
        let at_limit = format!("sprint_01_{}", "a".repeat(53));
        assert_eq!(at_limit.len(), 63);
        assert!(SchemaName::parse(&at_limit).is_ok());
        let over = format!("sprint_01_{}", "a".repeat(54));
        let err = SchemaName::parse(&over).unwrap_err();
        assert_eq!(err.reason, "longer than 63 bytes");
    }

    #[test]
    fn a_slug_that_derives_a_hostile_name_is_rejected() {
        assert!(SchemaName::for_tool(3, "values\"; drop table x").is_err());
        assert!(SchemaName::for_tool(3, "Values").is_err());
    }
}
