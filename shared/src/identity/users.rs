//! Syncing LearnWorlds users into `shared.users`, for webhooks and session launches.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::progress::Status;
use crate::registry::Registry;

/// A user as LearnWorlds describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmsUser {
    pub lms_user_id: String,
    pub email: String,
    pub full_name: String,
    pub organization: Membership,
}

/// What a sync does to the user's organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// The sync does not say: a session launch, or a webhook delivery, whose
    /// tags nobody vouches for (only LearnWorlds' API is believed about them:
    /// see `crate::identity::learnworlds`).
    Unchanged,
    /// The first `org:<slug>` tag of the user's tags.
    In(OrganizationTag),
    /// The user's whole tag list has no `org:` tag: in no organization, so no
    /// guru reads their work any more.
    NoOrganization,
}

impl Membership {
    /// From the user's whole tag list.
    pub fn from_tags<'a>(tags: impl IntoIterator<Item = &'a str>, company: Option<&str>) -> Self {
        OrganizationTag::from_tags(tags, company).map_or(Self::NoOrganization, Self::In)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationTag {
    pub slug: String,
    /// Shown to people; the company sign-up field when LearnWorlds has it.
    pub name: String,
}

impl OrganizationTag {
    /// The first tag of the form `org:<slug>` with a valid slug, lowercased.
    pub fn from_tags<'a>(
        tags: impl IntoIterator<Item = &'a str>,
        company: Option<&str>,
    ) -> Option<Self> {
        tags.into_iter().find_map(|tag| {
            let (prefix, slug) = tag.trim().split_once(':')?;
            if !prefix.eq_ignore_ascii_case("org") {
                return None;
            }
            let slug = slug.trim().to_ascii_lowercase();
            let valid = !slug.is_empty()
                && slug.len() <= 100
                && slug.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            valid.then(|| Self {
                name: company
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .unwrap_or(&slug)
                    .chars()
                    .take(255)
                    .collect(),
                slug,
            })
        })
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub lms_user_id: String,
    pub email: String,
    pub full_name: String,
    pub role: String,
    pub organization_id: Option<Uuid>,
    #[serde(skip)]
    pub created: bool,
}

impl LmsUser {
    /// Checks the fields against the columns they go into (VARCHAR(255), which
    /// counts characters). Ids and emails are one word: no space, control or
    /// other whitespace character ([`is_word_char`], as openapi.yaml's patterns).
    pub fn validate(&self) -> Result<(), ApiError> {
        let invalid = |message: &str| Err(ApiError::unprocessable("invalid_user", message));
        let id = &self.lms_user_id;
        if id.is_empty() || id.chars().count() > 255 || !id.chars().all(is_word_char) {
            return invalid(
                "the LearnWorlds user id must be 1 to 255 characters without spaces or control characters",
            );
        }
        let email = &self.email;
        if email.chars().count() > 255 || !email.contains('@') || !email.chars().all(is_word_char) {
            return invalid("the email address is not valid");
        }
        if self.full_name.chars().count() > 255 {
            return invalid("the name is longer than 255 characters");
        }
        if self.full_name.contains('\0') {
            return invalid("fields may not contain \\u0000");
        }
        Ok(())
    }
}

/// A character an id or email may hold: not ASCII space or control, not DEL,
/// not Unicode whitespace, and not an invisible formatting character
/// ([`is_invisible_format`]). openapi.yaml's `Word` pattern.
pub fn is_word_char(c: char) -> bool {
    c > ' ' && c != '\x7f' && !c.is_whitespace() && !is_invisible_format(c)
}

/// Characters that change how text around them is shown without showing
/// themselves: the bidirectional controls (which can turn `ana.evil` into
/// what reads as `live.ana`) and the zero-width characters (which make two
/// different names look the same). None belongs in an id or an email; a name
/// loses them ([`display_name`]).
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// A name as it is stored and shown to staff: without invisible formatting
/// characters, so that no name can pass for another or reverse the text
/// around it in a roster. (A name in a script that uses a zero-width joiner
/// between letters is shown without it: its letters are unchanged.)
pub fn display_name(name: &str) -> String {
    name.chars()
        .filter(|&c| !is_invisible_format(c))
        .collect::<String>()
        .trim()
        .to_owned()
}

/// An email as it is shown to staff: without invisible formatting characters.
/// A sync refuses an email holding any; one stored before that rule is shown
/// without them.
pub fn display_email(email: &str) -> String {
    email.chars().filter(|&c| !is_invisible_format(c)).collect()
}

/// In [`SYNC_SQL`]'s upsert: the sync's state is not older than the row's.
macro_rules! not_older {
    () => {
        "(excluded.lms_state_at is null or u.lms_state_at is null or excluded.lms_state_at >= u.lms_state_at)"
    };
}

/// The upsert of a user by LearnWorlds id, with a new user's progress rows.
/// Binds: $1 LearnWorlds id, $2 email, $3 full name, $4 organization, $5 and
/// $6 every tool's slug and starting status ([`initial_progress`]), $7 whether
/// this is a login, $8 whether an existing user keeps their organization
/// ([`Membership::Unchanged`]; otherwise they take $4, which may be null), $9
/// the time of the LearnWorlds state this sync carries, or null.
///
/// **Order.** `lms_state_at` keeps the latest such time a user was synced
/// with; a sync carrying an older one changes no email, name or organization
/// (a login time is still recorded), so an older answer never undoes a newer
/// one. A sync without a time (a launch, a delivery without its own time and
/// no API to confirm it) applies as it arrives.
///
/// **An admin's organization sticks.** A user whose organization an admin
/// set (`organization_source = 'admin'`) keeps it whatever LearnWorlds' tags
/// say, until an admin hands it back (`'learnworlds'`): the next tag sync then
/// applies.
///
/// **Joining.** `organization_joined_at` is when the user entered the
/// organization they are in: a guru reads only work saved since
/// (`crate::access::work_visible_to_caller!`).
///
/// Syncs of one LearnWorlds id take turns (a transaction-scoped advisory lock
/// on the id, before the insert): `ON CONFLICT` covers only its arbiter index,
/// and two upserts of one user racing each other could otherwise fail on the
/// email's unique index, a 409 for the user's own address. LearnWorlds sends
/// several deliveries for one user at once (a sign-up is a userUpdated, an
/// enrolment and a tag), and a launch may come meanwhile.
pub const SYNC_SQL: &str = concat!(
    r"with upserted as (
            insert into shared.users as u
                (lms_user_id, email, full_name, organization_id, last_login, organization_joined_at, lms_state_at)
            select $1, $2, $3, $4, case when $7 then current_timestamp end,
                case when $4::uuid is not null then current_timestamp end, $9
            from (select pg_advisory_xact_lock(1718908275, hashtext($1))) as one_sync_per_user
            on conflict (lms_user_id) do update set
                email = case when ",
    not_older!(),
    r" then excluded.email else u.email end,
                full_name = case when ",
    not_older!(),
    r" then excluded.full_name else u.full_name end,
                organization_id = case when $8 or u.organization_source = 'admin' or not ",
    not_older!(),
    r" then u.organization_id else excluded.organization_id end,
                organization_joined_at = case
                    when $8 or u.organization_source = 'admin' or not ",
    not_older!(),
    r" or excluded.organization_id is not distinct from u.organization_id
                        then u.organization_joined_at
                    else excluded.organization_joined_at end,
                lms_state_at = greatest(u.lms_state_at, excluded.lms_state_at),
                last_login = coalesce(excluded.last_login, u.last_login)
            returning u.id, u.lms_user_id, u.email, u.full_name, u.role, u.organization_id, (u.xmax = 0) as created
        ), progress as (
            insert into shared.user_progress (user_id, tool_slug, status, unlocked_at)
            select upserted.id, t.slug, t.status, case when t.status = 'unlocked' then current_timestamp end
            from upserted, unnest($5::text[], $6::text[]) as t(slug, status)
            where upserted.created
            on conflict (user_id, tool_slug) do nothing
        )
        select id, lms_user_id::text, email::text, full_name::text, role::text, organization_id, created from upserted"
);

/// A new organization; no row when the slug exists. Binds: $1 slug, $2 name.
pub const INSERT_ORGANIZATION_SQL: &str = "insert into shared.organizations (slug, name) values ($1, $2) on conflict (slug) do nothing returning id";

/// An organization's id by slug. Binds: $1 slug.
pub const ORGANIZATION_ID_SQL: &str = "select id from shared.organizations where slug = $1";

/// A new user's progress rows: every tool's slug, and its starting status.
pub fn initial_progress(registry: &Registry) -> (Vec<&str>, Vec<Status>) {
    registry
        .tools()
        .iter()
        .map(|t| (t.slug.as_str(), Status::initial(t)))
        .unzip()
}

/// Upserts the user by LearnWorlds id and, for a new user, creates one progress
/// row per registry tool. Re-syncing never touches progress. The user is
/// checked first ([`LmsUser::validate`]: a 422); an email held by a different
/// LearnWorlds id (compared case-insensitively) is a 409. A sync without a
/// time of its own: see [`sync_as_of`].
pub async fn sync(
    conn: &mut PgConnection,
    registry: &Registry,
    user: &LmsUser,
    record_login: bool,
) -> Result<User, ApiError> {
    sync_as_of(conn, registry, user, record_login, None).await
}

/// [`sync`], for a user as LearnWorlds held them at `as_of`: nothing changes
/// if the user already shows a later state ([`SYNC_SQL`]).
pub async fn sync_as_of(
    conn: &mut PgConnection,
    registry: &Registry,
    user: &LmsUser,
    record_login: bool,
    as_of: Option<DateTime<Utc>>,
) -> Result<User, ApiError> {
    user.validate()?;
    let organization_id = match &user.organization {
        Membership::In(org) => Some(organization(conn, org).await?),
        Membership::Unchanged | Membership::NoOrganization => None,
    };
    let (slugs, statuses) = initial_progress(registry);
    let synced = db::query_as::<User>(SYNC_SQL)
        .bind(&user.lms_user_id)
        .bind(user.email.trim())
        .bind(display_name(&user.full_name))
        .bind(organization_id)
        .bind(&slugs)
        .bind(&statuses)
        .bind(record_login)
        .bind(user.organization == Membership::Unchanged)
        .bind(as_of)
        .fetch_one(&mut *conn)
        .await
        .map_err(
            |e| match e.as_database_error().and_then(|d| d.constraint()) {
                Some("users_email_key" | "users_email_lower_key") => ApiError::Conflict {
                    code: "email_conflict",
                    message: "this email address belongs to another LearnWorlds account".into(),
                    details: serde_json::json!({ "email": user.email.trim() }),
                },
                _ => ApiError::from(e),
            },
        )?;
    Ok(synced)
}

/// The organization with this slug, created if new. Organizations are few and
/// their members many, so it is read first: one statement for nearly every
/// sync, and two or three for the sync that meets a new one.
async fn organization(conn: &mut PgConnection, org: &OrganizationTag) -> Result<Uuid, ApiError> {
    let existing: Option<Uuid> = db::query_scalar(ORGANIZATION_ID_SQL)
        .bind(&org.slug)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let inserted: Option<Uuid> = db::query_scalar(INSERT_ORGANIZATION_SQL)
        .bind(&org.slug)
        .bind(&org.name)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    // A concurrent sync created it since the read; a new statement sees it.
    Ok(db::query_scalar(ORGANIZATION_ID_SQL)
        .bind(&org.slug)
        .fetch_one(&mut *conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_valid_org_tag_names_the_organization() {
        let org = OrganizationTag::from_tags(
            ["vip", "ORG:Acme-Bakery", "org:other"],
            Some("Acme Bakery Ltd"),
        )
        .unwrap();
        assert_eq!(org.slug, "acme-bakery");
        assert_eq!(org.name, "Acme Bakery Ltd");
        let org = OrganizationTag::from_tags(["org:", "org:bad slug!", "org:acme"], None).unwrap();
        assert_eq!(
            org,
            OrganizationTag {
                slug: "acme".into(),
                name: "acme".into()
            }
        );
        assert!(OrganizationTag::from_tags(["organisation:acme", "vip"], None).is_none());
    }

    #[test]
    fn invisible_formatting_is_refused_in_ids_and_emails_and_dropped_from_names() {
        let ok = LmsUser {
            lms_user_id: "64a0f0000000000000000001".into(),
            email: "ana@example.test".into(),
            full_name: "Ana".into(),
            organization: Membership::Unchanged,
        };
        for sneaky in ["\u{202E}", "\u{200B}", "\u{2066}", "\u{FEFF}", "\u{200D}"] {
            let email = LmsUser {
                email: format!("ana{sneaky}@example.test"),
                ..ok.clone()
            };
            assert_eq!(
                email.validate().unwrap_err().code(),
                "invalid_user",
                "{sneaky:?}"
            );
            let id = LmsUser {
                lms_user_id: format!("64a0{sneaky}f"),
                ..ok.clone()
            };
            assert_eq!(
                id.validate().unwrap_err().code(),
                "invalid_user",
                "{sneaky:?}"
            );
            assert_eq!(
                display_name(&format!("Ana{sneaky} Lopes{sneaky}")),
                "Ana Lopes"
            );
        }
        // "Ana gnirts" with a right-to-left override reads as "Ana string".
        assert_eq!(display_name("Ana \u{202E}gnirts\u{202C}"), "Ana gnirts");
        assert_eq!(display_name("Zoë Ñúñez 李"), "Zoë Ñúñez 李");
    }

    /// The characters in openapi.yaml's `Word` class `[^...]`.
    fn word_pattern_excludes() -> Vec<(u32, u32)> {
        let spec = include_str!("../../../openapi.yaml");
        let word = &spec[spec.find("    Word:").expect("openapi.yaml has Word")..];
        let line = word
            .lines()
            .find(|l| l.trim_start().starts_with("pattern:"))
            .unwrap();
        let class = line
            .split_once("[^")
            .unwrap()
            .1
            .split_once("]*$")
            .unwrap()
            .0;
        let class = class.replace("\\\\", "\\");
        let mut chars = class.chars().peekable();
        let code = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> u32 {
            assert_eq!(chars.next(), Some('\\'));
            let digits = match chars.next() {
                Some('x') => 2,
                Some('u') => 4,
                other => panic!("unexpected escape {other:?} in {line}"),
            };
            let hex: String = chars.by_ref().take(digits).collect();
            u32::from_str_radix(&hex, 16).unwrap()
        };
        let mut ranges = Vec::new();
        while chars.peek().is_some() {
            let start = code(&mut chars);
            let end = if chars.peek() == Some(&'-') {
                chars.next();
                code(&mut chars)
            } else {
                start
            };
            ranges.push((start, end));
        }
        ranges
    }

    #[test]
    fn the_documents_word_pattern_refuses_exactly_what_the_service_refuses() {
        let excluded = word_pattern_excludes();
        for c in (0..=0xFFFF_u32).filter_map(char::from_u32) {
            let in_class = excluded
                .iter()
                .any(|&(start, end)| (start..=end).contains(&(c as u32)));
            assert_eq!(
                is_word_char(c),
                !in_class,
                "U+{:04X}: the service and openapi.yaml's Word disagree",
                c as u32
            );
        }
    }

    #[test]
    fn user_fields_are_checked_against_their_columns() {
        let ok = LmsUser {
            lms_user_id: "64a0f0000000000000000001".into(),
            email: "ana@example.test".into(),
            full_name: "Ana".into(),
            organization: Membership::Unchanged,
        };
        assert!(ok.validate().is_ok());
        for bad in [
            LmsUser {
                lms_user_id: String::new(),
                ..ok.clone()
            },
            LmsUser {
                email: "not-an-email".into(),
                ..ok.clone()
            },
            LmsUser {
                email: "a b@example.test".into(),
                ..ok.clone()
            },
            LmsUser {
                full_name: "x".repeat(256),
                ..ok.clone()
            },
            LmsUser {
                full_name: "a\0b".into(),
                ..ok
            },
        ] {
            assert_eq!(
                bad.validate().unwrap_err().status().as_u16(),
                422,
                "{bad:?}"
            );
        }
    }
}
