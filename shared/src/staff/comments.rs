//! Staff feedback on a participant's tool, and what the participant sees of
//! what staff did.
//!
//! - `POST /users/{id}/tools/{slug}/comments`: a guru of the participant's
//!   organization or an admin comments (1 to 4000 characters); comments are
//!   append-only, signed with the author's name and role as they were.
//! - `GET /users/{id}/tools/{slug}/comments`: staff read them (an audited
//!   read, `read.comments`); the participant may too, and reads nothing as
//!   read there.
//! - `GET /tools/{slug}/comments`: the participant reads their own, which
//!   marks them read (`shared.comment_reads`): `/progress` counts each tool's
//!   comments newer than that as `unread_comments`.
//! - `GET /me/activity`: the overrides and comments on the caller's tools,
//!   newest first, in keyset pages.
//!
//! A list of a tool's comments holds the newest [`MAX_COMMENTS`], oldest first.

use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::overrides::tool;
use super::{Acting, acting};
use crate::access::{Caller, caller_and_target};
use crate::audit::{self, Action, Change, audit_read};
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, cursor, response};
use crate::identity::users::display_name;
use crate::registry::Tool;

/// The most comments a list of one tool's answers with: the newest ones.
pub const MAX_COMMENTS: i64 = 200;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Comment {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tool_slug: String,
    pub author_id: Option<Uuid>,
    pub author_name: String,
    pub author_role: String,
    pub body: String,
    #[serde(serialize_with = "crate::foundation::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

impl Comment {
    /// As staff and the participant are shown it: the author's name without
    /// invisible formatting characters, whenever it was signed.
    fn shown(self) -> Self {
        Self {
            author_name: display_name(&self.author_name),
            ..self
        }
    }
}

macro_rules! comment_columns {
    ($c:literal) => {
        concat!(
            $c,
            ".id, ",
            $c,
            ".user_id, ",
            $c,
            ".tool_slug::text, ",
            $c,
            ".author_id, ",
            $c,
            ".author_name::text, ",
            $c,
            ".author_role::text, ",
            $c,
            ".body, ",
            $c,
            ".created_at"
        )
    };
}

/// A comment, signed. Binds: $1 the participant, $2 the tool's slug, $3 the
/// author, $4 their role, $5 their name, $6 the comment.
pub const INSERT_SQL: &str = concat!(
    "insert into shared.comments (user_id, tool_slug, author_id, author_role, author_name, body)
     values ($1, $2, $3, $4, $5, $6) returning ",
    comment_columns!("comments")
);

/// A comment by `acting` on their target's `tool`, in their transaction.
pub(crate) async fn insert(
    tx: &mut PgConnection,
    acting: &Acting,
    tool: &Tool,
    body: &str,
) -> Result<Comment, ApiError> {
    let comment: Comment = db::query_as(INSERT_SQL)
        .bind(acting.target)
        .bind(&tool.slug)
        .bind(acting.actor)
        .bind(&acting.actor_role)
        .bind(&acting.actor_name)
        .bind(body)
        .fetch_one(&mut *tx)
        .await?;
    Ok(comment.shown())
}

/// `POST /users/{user_id}/tools/{slug}/comments`: 201, the comment.
pub async fn post(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = tool(ctx, request)?;
    let body = request.json_body()?;
    let object = super::fields(&body, &["body"])?;
    let text = super::text(object, "body", 4000)?;
    let posted = ctx
        .pool
        .transaction(async |tx| {
            let acting = acting(tx, caller.id(), target).await?;
            let posted = insert(tx, &acting, tool, text).await?;
            audit::record(
                tx,
                &Change {
                    actor: acting.actor,
                    actor_role: &acting.actor_role,
                    action: Action::Comment,
                    subjects: vec![target],
                    organization: acting.organization,
                    tool: Some(&tool.slug),
                    reason: None,
                    request_id: request.id(),
                    before: None,
                    after: Some(json!({ "comment_id": posted.id })),
                },
            )
            .await?;
            Ok::<_, ApiError>(posted)
        })
        .await?;
    request.log().outcome("commented");
    Ok(response::json(StatusCode::CREATED, &posted))
}

/// A staff read of `t`'s comments on a tool, audited by the statement. The
/// first row says whether the caller exists and sees `t`; the comments follow
/// (none when not). Binds: $1 caller, $2 target, $3 tool, $4 request, $5 limit.
pub const STAFF_LIST_SQL: &str = concat!(
    "with ",
    caller_and_target!("$1", "$2"),
    ", ",
    audit_read!("read.comments", "$4", "$3"),
    ", seen as (
        select a.id is not null as actor_exists, t.id as target_id
        from (values (1)) as one
        left join caller a on true
        left join target t on true
    ), listed as (
        select ",
    comment_columns!("c"),
    " from shared.comments c, seen
        where seen.target_id is not null and c.user_id = seen.target_id and c.tool_slug = $3
        order by c.created_at desc, c.id desc limit $5
    )
    select seen.actor_exists, seen.target_id, l.id, l.user_id, l.tool_slug, l.author_id, l.author_name,
           l.author_role, l.body, l.created_at
    from seen left join listed l on true
    order by l.created_at, l.id"
);

/// One row of a list: whether the caller exists and sees the person, and a
/// comment (none when there is none).
#[derive(sqlx::FromRow)]
struct ListedRow {
    actor_exists: bool,
    target_id: Option<Uuid>,
    id: Option<Uuid>,
    user_id: Option<Uuid>,
    tool_slug: Option<String>,
    author_id: Option<Uuid>,
    author_name: Option<String>,
    author_role: Option<String>,
    body: Option<String>,
    created_at: Option<DateTime<Utc>>,
}

struct Listed {
    actor_exists: bool,
    target_id: Option<Uuid>,
    comments: Vec<Comment>,
}

fn listed(rows: Vec<ListedRow>) -> Listed {
    let (actor_exists, target_id) = rows
        .first()
        .map_or((false, None), |r| (r.actor_exists, r.target_id));
    let comments = rows
        .into_iter()
        .filter_map(|r| {
            Some(Comment {
                id: r.id?,
                user_id: r.user_id?,
                tool_slug: r.tool_slug?,
                author_id: r.author_id,
                author_name: display_name(&r.author_name?),
                author_role: r.author_role?,
                body: r.body?,
                created_at: r.created_at?,
            })
        })
        .collect();
    Listed {
        actor_exists,
        target_id,
        comments,
    }
}

/// `GET /users/{user_id}/tools/{slug}/comments`.
pub async fn list_for(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    target: Uuid,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = tool(ctx, request)?;
    let listed = listed(
        ctx.read(async |conn| {
            Ok::<_, ApiError>(
                db::query_as(STAFF_LIST_SQL)
                    .bind(caller.id())
                    .bind(target)
                    .bind(&tool.slug)
                    .bind(request.id())
                    .bind(MAX_COMMENTS)
                    .fetch_all(conn)
                    .await?,
            )
        })
        .await?,
    );
    if !listed.actor_exists {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
    }
    let user_id = listed
        .target_id
        .ok_or(ApiError::NotFound("user_not_found"))?;
    Ok(response::json(
        StatusCode::OK,
        &json!({ "user_id": user_id, "tool": tool.slug, "comments": listed.comments }),
    ))
}

/// The caller's own comments on a tool, marked read up to the newest one
/// listed (or now, when there is none). Binds: $1 caller, $2 tool, $3 limit.
const OWN_LIST_SQL: &str = concat!(
    "with me as (
        select id from shared.callers where id = $1
    ), listed as (
        select ",
    comment_columns!("c"),
    " from shared.comments c join me on c.user_id = me.id
        where c.tool_slug = $2
        order by c.created_at desc, c.id desc limit $3
    ), marked as (
        insert into shared.comment_reads as r (user_id, tool_slug, read_at)
        select me.id, $2, coalesce((select max(created_at) from listed), current_timestamp) from me
        on conflict (user_id, tool_slug) do update
            set read_at = greatest(r.read_at, excluded.read_at)
        returning 1
    )
    select exists (select 1 from me) as actor_exists, (select id from me) as target_id,
           l.id, l.user_id, l.tool_slug, l.author_id, l.author_name, l.author_role, l.body, l.created_at
    from (values (1)) as one left join listed l on true
    order by l.created_at, l.id"
);

/// `GET /tools/{slug}/comments`: the caller's own, which marks them read.
pub async fn list_own(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let tool = ctx.tool(request)?;
    let listed = listed(
        ctx.pool
            .transaction(async |tx| {
                Ok::<_, ApiError>(
                    db::query_as(OWN_LIST_SQL)
                        .bind(caller.id())
                        .bind(&tool.slug)
                        .bind(MAX_COMMENTS)
                        .fetch_all(&mut *tx)
                        .await?,
                )
            })
            .await?,
    );
    if !listed.actor_exists {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
    }
    Ok(response::json(
        StatusCode::OK,
        &json!({ "user_id": caller.id(), "tool": tool.slug, "comments": listed.comments }),
    ))
}

/// One thing staff did on the caller's tools.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Activity {
    /// `unlock`, `reopen` or `comment`.
    pub kind: String,
    pub id: Uuid,
    pub tool_slug: String,
    /// The staff member's name as it is now (a comment's as it was signed);
    /// null when they are gone.
    pub actor_name: Option<String>,
    pub actor_role: String,
    /// An override's reason; null for a comment.
    pub reason: Option<String>,
    /// A comment's text; null for an override.
    pub body: Option<String>,
    #[serde(serialize_with = "crate::foundation::rfc3339::serialize")]
    pub at: DateTime<Utc>,
}

/// The caller's activity, newest first, after the cursor `($2, $3)` when
/// given. Binds: $1 caller, $2 cursor time, $3 cursor id, $4 limit + 1.
const ACTIVITY_SQL: &str = "with me as (
        select id from shared.callers where id = $1
    ), items as (
        (select 'override' as source, o.kind::text as kind, o.id, o.tool_slug::text as tool_slug,
                u.full_name::text as actor_name, o.actor_role::text as actor_role,
                o.reason as reason, null::text as body, o.created_at as at
         from shared.overrides o join me on o.user_id = me.id
         left join shared.users u on u.id = o.actor_id
         where $2::timestamptz is null or (o.created_at, o.id) < ($2, $3)
         order by o.created_at desc, o.id desc limit $4)
        union all
        (select 'comment', 'comment', c.id, c.tool_slug::text, c.author_name::text, c.author_role::text,
                null, c.body, c.created_at
         from shared.comments c join me on c.user_id = me.id
         where $2::timestamptz is null or (c.created_at, c.id) < ($2, $3)
         order by c.created_at desc, c.id desc limit $4)
    )
    select kind, id, tool_slug, actor_name, actor_role, reason, body, at
    from items order by at desc, id desc limit $4";

/// `GET /me/activity`.
pub async fn activity(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&["cursor", "limit"])?;
    let limit = request.limit(50, 200)?;
    let after: Option<(DateTime<Utc>, Uuid)> = request.cursor()?;
    let (exists, items) = ctx
        .read(async |conn| {
            let exists: bool =
                db::query_scalar("select exists (select 1 from shared.callers where id = $1)")
                    .bind(caller.id())
                    .fetch_one(&mut *conn)
                    .await?;
            let items: Vec<Activity> = db::query_as(ACTIVITY_SQL)
                .bind(caller.id())
                .bind(after.map(|(at, _)| at))
                .bind(after.map(|(_, id)| id))
                .bind(limit as i64 + 1)
                .fetch_all(&mut *conn)
                .await?;
            Ok::<_, ApiError>((exists, items))
        })
        .await?;
    if !exists {
        return Err(ApiError::InvalidToken("the token's user no longer exists"));
    }
    let items: Vec<Activity> = items
        .into_iter()
        .map(|item| Activity {
            actor_name: item.actor_name.as_deref().map(display_name),
            ..item
        })
        .collect();
    let page = cursor::page(items, limit, |item| (item.at, item.id));
    Ok(response::json(StatusCode::OK, &page))
}
