//! A person's whole record (GDPR Art. 15 and 20): everything stored about
//! them, as one JSON document in a versioned shape (`ExportV1` in the OpenAPI
//! spec).
//!
//! One statement reads it all, whatever the number of tool schemas (one
//! `union all` branch per schema), sent alone: it is its own transaction, and
//! all its parts read the one snapshot taken when it starts, which is what a
//! REPEATABLE READ transaction around it would give, in one round trip
//! instead of three (BEGIN and COMMIT each wait for their answer). A person's
//! own export writes nothing. An admin's export of someone else is recorded in
//! the audit log by that same statement (a data-modifying CTE), so the record
//! and its audit row are one atomic act.
//!
//! The statement returns the record as rows, one per item, in the document's
//! order; [`write`] streams them into the document without ever holding it as
//! a parsed value. Rows are whole tables' rows (`to_jsonb`): a column a later
//! migration adds is exported without a change here. One exception: a
//! session's refresh tokens are told by their issue and use times, never
//! their SHA-256 (a credential's hash tells the person nothing, and has no
//! place in a file they may pass on).

use chrono::Utc;
use futures_util::TryStreamExt;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::foundation::out::Out;
use crate::registry::Registry;
use crate::registry::sql::{Branches, Sql, expand};

/// The document's format and version, its first two members.
pub const FORMAT: &str = "fasttrack.export";
pub const VERSION: u32 = 1;

/// The document's sections, in order: (number in the statement, member name,
/// whether it is one object rather than a list).
const SECTIONS: [(i32, &str, bool); 17] = [
    (1, "user", true),
    (2, "progress", false),
    (3, "submissions", false),
    (4, "submission_history", false),
    (5, "comments_about_them", false),
    (6, "comments_they_wrote", false),
    (7, "comment_reads", false),
    (8, "overrides", false),
    (9, "idempotency_keys", false),
    (10, "save_budgets", false),
    (11, "webhook_deliveries", false),
    (12, "session_launches", false),
    (13, "audit_log", false),
    (14, "erasure_requests", false),
    (15, "overrides_they_made", false),
    (16, "staff_idempotency_keys", false),
    (17, "sessions", false),
];

/// Who exports whose record.
#[derive(Debug, Clone, Copy)]
pub enum Exporter<'a> {
    /// A signed-in user, through the API: themself, or anyone when they are
    /// an admin (read from their row by the statement). `request_id` goes
    /// into the audit row of an admin's export.
    Caller { id: Uuid, request_id: &'a str },
    /// The operator, with the database's owner login (`fasttrack export`):
    /// audited as the operator.
    Operator,
}

/// What the statement found before the record: the caller's role (`None`:
/// no open account) and whether the target exists at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub caller_role: Option<String>,
    pub found: bool,
}

/// Why no record was written.
#[derive(Debug)]
pub enum Refused {
    /// The caller has no open account.
    NoCaller,
    /// Not the caller's record, and the caller is not an admin.
    NotAllowed,
    /// No such user (told only to an admin or the operator).
    NotFound,
}

/// The export statement for `registry`'s tool schemas. Binds: $1 caller (null
/// for the operator), $2 target, $3 the tools' slugs in the schemas' order,
/// $4 the request id.
pub fn statement(registry: &Registry, exporter: Exporter<'_>, target: Uuid) -> Sql {
    let own = matches!(exporter, Exporter::Caller { id, .. } if id == target);
    let template = match (exporter, own) {
        (Exporter::Operator, _) => OPERATOR,
        (Exporter::Caller { .. }, true) => OWN,
        (Exporter::Caller { .. }, false) => STAFF,
    };
    expand(
        template,
        None,
        Some(Branches {
            each: SUBMISSIONS_BRANCH,
            none: "select 3, 0, null::text, null::jsonb where false",
            schemas: registry.tools().iter().map(|tool| &tool.schema).collect(),
        }),
    )
}

/// Runs the export statement on `conn` (alone, so that it is its own
/// transaction and snapshot: [`db::Pool::one_statement`]) and writes the
/// document to `out` as its rows arrive. `Err(Ok(refused))` when there is nothing to write, before anything
/// was written.
pub async fn write(
    conn: &mut PgConnection,
    registry: &Registry,
    exporter: Exporter<'_>,
    target: Uuid,
    out: &mut impl Out,
) -> Result<Result<(), Refused>, ApiError> {
    let (caller, request_id) = match exporter {
        Exporter::Caller { id, request_id } => (Some(id), request_id),
        Exporter::Operator => (None, ""),
    };
    let slugs: Vec<&str> = registry.tools().iter().map(|t| t.slug.as_str()).collect();
    let sql = statement(registry, exporter, target);
    let mut rows = db::query(sql)
        .bind(caller)
        .bind(target)
        .bind(&slugs)
        .bind(request_id)
        .fetch(&mut *conn);
    // The first row is the access row: whether to write anything at all.
    let Some(first) = rows.try_next().await? else {
        return Err(ApiError::Internal(
            "the export returned no access row".into(),
        ));
    };
    let access: Access = {
        let item: serde_json::Value = serde_json::from_str(first.try_get::<&str, _>("item")?)
            .map_err(|e| ApiError::Internal(format!("the export's access row: {e}")))?;
        Access {
            caller_role: item["caller_role"].as_str().map(str::to_owned),
            found: item["found"].as_bool().unwrap_or(false),
        }
    };
    if let Some(refused) = refusal(exporter, target, &access) {
        return Ok(Err(refused));
    }
    let io = |e: std::io::Error| ApiError::Internal(format!("writing the export: {e}"));
    let mut exported_at = String::new();
    crate::foundation::rfc3339::push_json(&mut exported_at, &Utc::now());
    let head =
        format!("{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"exported_at\":{exported_at}");
    out.put(head.as_bytes()).await.map_err(io)?;
    let mut open: Option<usize> = None; // the index in SECTIONS of the open section
    let mut first_in_section = true;
    let mut next_section = 0;
    while let Some(row) = rows.try_next().await? {
        let section: i32 = row.try_get("section")?;
        let item: &str = row.try_get("item")?;
        let index = SECTIONS
            .iter()
            .position(|(n, ..)| *n == section)
            .ok_or_else(|| ApiError::Internal(format!("unknown export section {section}")))?;
        // What goes before the item: the sections up to its own.
        let mut between = String::new();
        if open != Some(index) {
            close(&mut between, open);
            // Sections without rows in between are written empty.
            for (_, name, single) in &SECTIONS[next_section..index] {
                empty(&mut between, name, *single);
            }
            let (_, name, single) = SECTIONS[index];
            between.push_str(&format!(",\"{name}\":{}", if single { "" } else { "[" }));
            open = Some(index);
            next_section = index + 1;
            first_in_section = true;
        }
        if !first_in_section {
            between.push(',');
        }
        out.put(between.as_bytes()).await.map_err(io)?;
        out.put(item.as_bytes()).await.map_err(io)?;
        first_in_section = false;
    }
    let mut tail = String::new();
    close(&mut tail, open);
    for (_, name, single) in &SECTIONS[next_section..] {
        empty(&mut tail, name, *single);
    }
    tail.push('}');
    out.put(tail.as_bytes()).await.map_err(io)?;
    Ok(Ok(()))
}

/// Closes the open section, when it is a list.
fn close(out: &mut String, open: Option<usize>) {
    if let Some(index) = open
        && !SECTIONS[index].2
    {
        out.push(']');
    }
}

/// A section without rows: `null`, or an empty list.
fn empty(out: &mut String, name: &str, single: bool) {
    out.push_str(&format!(
        ",\"{name}\":{}",
        if single { "null" } else { "[]" }
    ));
}

/// Whether the export stops before its first byte, and why.
fn refusal(exporter: Exporter<'_>, target: Uuid, access: &Access) -> Option<Refused> {
    match exporter {
        Exporter::Operator => (!access.found).then_some(Refused::NotFound),
        Exporter::Caller { id, .. } => match access.caller_role.as_deref() {
            None => Some(Refused::NoCaller),
            Some("admin") if !access.found => Some(Refused::NotFound),
            Some("admin") => None,
            Some(_) if id == target => None,
            Some(_) => Some(Refused::NotAllowed),
        },
    }
}

/// The caller's row (`access`), and the target if the caller may export it
/// (`t`): themself, or anyone for an admin.
macro_rules! caller_access {
    () => {
        "with access as (
            select a.id, a.role::text from shared.callers a where a.id = $1
        ), t as (
            select t.* from shared.users t, access a
            where t.id = $2 and (a.id = t.id or a.role = 'admin')
        ), "
    };
}

/// Every row about `t`, as (section, order, item). The audit rows of this
/// export are not among them: the statement's snapshot precedes them.
macro_rules! record {
    () => {
        "items (section, n, tool, item) as (
            select 0, 0, null::text, jsonb_build_object(
                'caller_role', (select role from access),
                'found', exists (select 1 from shared.users where id = $2))
            union all
            select 1, 0, null, to_jsonb(t) || jsonb_build_object('organization', to_jsonb(o))
            from t left join shared.organizations o on o.id = t.organization_id
            union all
            select 2, tool.n, tool.slug, coalesce(to_jsonb(p), jsonb_build_object(
                       'tool_slug', tool.slug, 'status', 'locked', 'progress_percentage', 0))
            from t cross join unnest($3::text[]) with ordinality as tool (slug, n)
            left join shared.user_progress p on p.user_id = t.id and p.tool_slug = tool.slug
            union all
            {branches}
            union all
            select 4, 0, h.tool_slug, to_jsonb(h) from shared.submission_history h join t on h.user_id = t.id
            union all
            select 5, 0, c.tool_slug, to_jsonb(c) from shared.comments c join t on c.user_id = t.id
            union all
            select 6, 0, c.tool_slug, to_jsonb(c) from shared.comments c join t on c.author_id = t.id
            union all
            select 7, 0, r.tool_slug, to_jsonb(r) from shared.comment_reads r join t on r.user_id = t.id
            union all
            select 8, 0, o.tool_slug, to_jsonb(o) from shared.overrides o join t on o.user_id = t.id
            union all
            select 9, 0, null, to_jsonb(k) from shared.idempotency_keys k join t on k.user_id = t.id
            union all
            select 10, 0, null, to_jsonb(b) from shared.save_budgets b join t on b.user_id = t.id
            union all
            select 11, 0, null, to_jsonb(w) from shared.webhook_events w join t on w.lms_user_id = t.lms_user_id
            union all
            select 12, 0, null, to_jsonb(l) from shared.session_launches l join t on l.lms_user_id = t.lms_user_id
            union all
            select 13, 0, null, to_jsonb(l) from shared.audit_log l join t on l.subjects @> array[t.id]
            union all
            select 14, 0, null, to_jsonb(r) from shared.erasure_requests r join t on r.subject = t.id
            union all
            select 15, 0, o.tool_slug, to_jsonb(o) from shared.overrides o join t on o.actor_id = t.id
            union all
            select 16, 0, null, to_jsonb(k) - 'response' from shared.staff_idempotency_keys k
            join t on k.actor_id = t.id or k.subject = t.id
            union all
            select 17, 0, null, to_jsonb(f) || jsonb_build_object('refresh_tokens',
                       (select coalesce(jsonb_agg(jsonb_build_object('issued_at', r.issued_at, 'used_at', r.used_at)
                                                  order by r.issued_at), '[]')
                        from shared.refresh_tokens r where r.family_id = f.id))
            from shared.refresh_families f join t on f.user_id = t.id
        )
        select section, item::text as item from items
        order by section, n, tool, item->>'created_at', item->>'id'"
    };
}

/// One tool schema's submission of `t`, with its field outputs.
const SUBMISSIONS_BRANCH: &str = "select 3, {i}, ($3::text[])[{i} + 1],
        to_jsonb(s) || jsonb_build_object(
            'tool_slug', ($3::text[])[{i} + 1],
            'field_outputs', (select coalesce(jsonb_agg(to_jsonb(f) order by f.field_id), '[]')
                              from {s}.field_outputs f where f.submission_id = s.id))
    from {s}.submissions s join t on s.user_id = t.id";

/// A person's own export: it writes nothing.
const OWN: &str = concat!(caller_access!(), record!());

/// An admin's export of someone else, audited by the statement that reads it.
const STAFF: &str = concat!(
    caller_access!(),
    "audit as (
        insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, request_id)
        select a.id, a.role, 'export', array[t.id], t.organization_id, $4::text
        from access a, t where a.id <> t.id
        returning 1
    ), ",
    record!()
);

/// The operator's export (`fasttrack export`): anyone, audited as the operator.
const OPERATOR: &str = concat!(
    "with access as (
        select null::uuid as id, 'operator'::text as role where $1::uuid is null
    ), t as (
        select t.* from shared.users t where t.id = $2
    ), audit as (
        insert into shared.audit_log (actor_role, action, subjects, organization_id, request_id)
        select 'operator', 'export', array[t.id], t.organization_id, nullif($4::text, '')
        from t
        returning 1
    ), ",
    record!()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_may_export_themself_and_an_admin_anyone() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        let caller = Exporter::Caller {
            id: me,
            request_id: "r",
        };
        let access = |role: Option<&str>, found| Access {
            caller_role: role.map(str::to_owned),
            found,
        };
        assert!(refusal(caller, me, &access(Some("user"), true)).is_none());
        assert!(matches!(
            refusal(caller, other, &access(Some("guru"), true)),
            Some(Refused::NotAllowed)
        ));
        assert!(matches!(
            refusal(caller, other, &access(Some("user"), false)),
            Some(Refused::NotAllowed)
        ));
        assert!(refusal(caller, other, &access(Some("admin"), true)).is_none());
        assert!(matches!(
            refusal(caller, other, &access(Some("admin"), false)),
            Some(Refused::NotFound)
        ));
        assert!(matches!(
            refusal(caller, me, &access(None, true)),
            Some(Refused::NoCaller)
        ));
    }

    #[test]
    fn the_statement_has_one_branch_per_tool_schema_and_audits_only_others() {
        let registry = Registry::embedded();
        let me = Uuid::new_v4();
        let caller = Exporter::Caller {
            id: me,
            request_id: "r",
        };
        let own = statement(registry, caller, me);
        let staff = statement(registry, caller, Uuid::new_v4());
        let branches = own.as_str().matches(".field_outputs f where").count();
        assert_eq!(branches, registry.tools().len());
        assert!(!own.as_str().contains("insert into"));
        assert!(staff.as_str().contains("insert into shared.audit_log"));
    }
}
