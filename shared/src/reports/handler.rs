//! The reports' HTTP edge: reading each route's query, one statement per
//! answer, and the answer's shape.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use http::{HeaderValue, StatusCode, header};
use lambda_http::Body;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row as _};
use uuid::Uuid;

use super::{
    Direction, RosterFilter, Sort, check_prefix, csv, current_tool, parse_statuses, percent, sql,
    status_of_code, tool_columns,
};
use crate::access::Caller;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::foundation::out::{Limited, Out};
use crate::http::stream::{self, Chunks, Streamed};
use crate::http::{Context, Request, Response, cursor, response};
use crate::identity::users::{display_email, display_name};
use crate::progress::Status;
use crate::registry::Registry;

const ORGANIZATION_NOT_FOUND: ApiError = ApiError::NotFound("organization_not_found");
const NO_CALLER: ApiError = ApiError::InvalidToken("the token's user no longer exists");

/// The limits of a page: `limit` 1 to 200, 50 by default.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

// ---------------------------------------------------------------- organizations

#[derive(Debug, Serialize)]
struct Organization {
    id: Uuid,
    name: String,
    slug: String,
    members: i64,
    /// Tools completed by all members together.
    tools_completed: i64,
    /// `tools_completed` out of members × tools, as a whole percentage.
    completion_percent: u32,
    /// Members who completed every tool.
    members_finished: i64,
}

/// `GET /organizations`: an admin's every organization, a guru's own; a
/// participant is refused (403).
pub async fn organizations(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&["cursor", "limit"])?;
    let limit = request.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after: Option<(String, Uuid)> = request.cursor()?;
    let tools = ctx.registry.tools().len();
    let rows: Vec<PgRow> = ctx
        .read(async |conn| {
            Ok(db::query(sql::ORGANIZATIONS)
                .bind(caller.id())
                .bind(tools as i32)
                .bind(after.as_ref().map(|(name, _)| name.as_str()))
                .bind(after.as_ref().map(|(_, id)| *id))
                .bind(limit as i64 + 1)
                .fetch_all(&mut *conn)
                .await?)
        })
        .await?;
    let role: Option<String> = match rows.first() {
        Some(row) => row.try_get("caller_role")?,
        None => None,
    };
    match role.as_deref() {
        None => return Err(NO_CALLER),
        Some("admin" | "guru") => {}
        Some(_) => {
            return Err(ApiError::Forbidden(
                "only staff (a guru or an admin) list organizations",
            ));
        }
    }
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(id) = row.try_get::<Option<Uuid>, _>("id")? else {
            continue;
        };
        let members: i64 = row.try_get("members")?;
        let completed: i64 = row.try_get("completed")?;
        items.push(Organization {
            id,
            name: row.try_get("name")?,
            slug: row.try_get("slug")?,
            members,
            tools_completed: completed,
            completion_percent: percent(completed, tools * members.max(0) as usize),
            members_finished: row.try_get("finished")?,
        });
    }
    let page = cursor::page(items, limit, |o| (o.name.clone(), o.id));
    Ok(response::json(StatusCode::OK, &page))
}

// ---------------------------------------------------------------- roster

/// Where a roster page starts: after this member, in this order.
#[derive(Debug, Serialize, Deserialize)]
struct RosterCursor {
    sort: Sort,
    direction: Direction,
    key: String,
    id: Uuid,
}

/// Everything a roster statement binds.
struct RosterQuery {
    caller: Uuid,
    organization: Uuid,
    request_id: String,
    slugs: Vec<String>,
    initials: Vec<&'static str>,
    tool: Option<String>,
    tool_initial: Option<&'static str>,
    statuses: Option<Vec<&'static str>>,
    stuck_days: Option<i32>,
    prefix: Option<String>,
    after: Option<(String, Uuid)>,
    /// Rows to fetch and rows shown (`None`: all, the CSV).
    fetch: Option<i64>,
    shown: Option<i64>,
}

impl RosterQuery {
    fn bind(&self, sql: &'static str) -> Query<'_, Postgres, PgArguments> {
        db::query(sql)
            .bind(self.caller)
            .bind(self.organization)
            .bind(&self.request_id)
            .bind(&self.slugs)
            .bind(&self.initials)
            .bind(self.tool.as_deref())
            .bind(self.tool_initial)
            .bind(self.statuses.as_ref())
            .bind(self.stuck_days)
            .bind(self.prefix.as_deref())
            .bind(self.after.as_ref().map(|(key, _)| key.as_str()))
            .bind(self.after.as_ref().map(|(_, id)| *id))
            .bind(self.fetch)
            .bind(self.shown)
    }
}

#[derive(Debug, Serialize)]
struct Member {
    id: Uuid,
    name: String,
    email: String,
    role: String,
    /// One letter per tool, in registry order (`tools` in the page).
    statuses: String,
    completed: i64,
    progress_percent: u32,
    current_tool: Option<&'static str>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    last_activity_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    last_login_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    sort_key: String,
}

/// The access outcome every roster row carries: 401 when the caller has no
/// open account, 404 when they may not read the organization (or it does
/// not exist).
fn roster_access(row: &PgRow) -> Result<(), ApiError> {
    if !row.try_get::<bool, _>("caller_exists")? {
        return Err(NO_CALLER);
    }
    if !row.try_get::<bool, _>("visible")? {
        return Err(ORGANIZATION_NOT_FOUND);
    }
    Ok(())
}

fn member(registry: &'static Registry, row: &PgRow) -> Result<Option<Member>, ApiError> {
    let Some(id) = row.try_get::<Option<Uuid>, _>("id")? else {
        return Ok(None);
    };
    let statuses: String = row
        .try_get::<Option<String>, _>("statuses")?
        .unwrap_or_default();
    let completed: i64 = row.try_get("completed")?;
    Ok(Some(Member {
        id,
        name: display_name(&row.try_get::<String, _>("name")?),
        email: display_email(&row.try_get::<String, _>("email")?),
        role: row.try_get("role")?,
        current_tool: current_tool(registry, &statuses).map(|t| t.slug.as_str()),
        statuses,
        completed,
        progress_percent: percent(completed, registry.tools().len()),
        last_activity_at: row.try_get("last_activity_at")?,
        last_login_at: row.try_get("last_login")?,
        sort_key: row.try_get("sort_key")?,
    }))
}

/// A roster request's statement and binds: which rows, in which order.
struct Roster {
    query: RosterQuery,
    sort: Sort,
    direction: Direction,
    limit: usize,
    /// [`sql`]'s statements are indexed `[sort][direction]`.
    sort_index: usize,
    direction_index: usize,
}

/// Reads a roster request's filters, order and page (`csv`: the whole roster).
fn roster_request(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    organization: Uuid,
    csv: bool,
) -> Result<Roster, ApiError> {
    request.allow_query(&[
        "tool",
        "status",
        "stuck_days",
        "q",
        "sort",
        "order",
        "cursor",
        "limit",
    ])?;
    let filter = roster_filter(ctx, request)?;
    let sort = match request.query("sort")? {
        None => Sort::Name,
        Some(s) => Sort::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_filter",
                "`sort` must be name, last_activity or progress",
            )
        })?,
    };
    let direction = match request.query("order")? {
        None => Direction::Asc,
        Some(s) => Direction::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_filter", "`order` must be asc or desc")
        })?,
    };
    let limit = request.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = match request.cursor::<RosterCursor>()? {
        None => None,
        Some(c) if c.sort == sort && c.direction == direction => Some((c.key, c.id)),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_cursor",
                "`cursor` belongs to another sort or order",
            ));
        }
    };
    let (slugs, initials) = tool_columns(ctx.registry);
    let (tool, tool_initial, statuses) = match &filter.tool {
        Some((tool, statuses)) => (
            Some(tool.slug.clone()),
            Some(Status::initial(tool).as_str()),
            Some(statuses.iter().map(|s| s.as_str()).collect()),
        ),
        None => (None, None, None),
    };
    let query = RosterQuery {
        caller: caller.id(),
        organization,
        request_id: request.id().to_owned(),
        slugs,
        initials,
        tool,
        tool_initial,
        statuses,
        stuck_days: filter.stuck_days,
        prefix: filter.prefix,
        after: if csv { None } else { after },
        fetch: (!csv).then_some(limit as i64 + 1),
        shown: (!csv).then_some(limit as i64),
    };
    let sort_index = match sort {
        Sort::Name => 0,
        Sort::LastActivity => 1,
        Sort::Progress => 2,
    };
    let direction_index = match direction {
        Direction::Asc => 0,
        Direction::Desc => 1,
    };
    Ok(Roster {
        query,
        sort,
        direction,
        limit,
        sort_index,
        direction_index,
    })
}

/// The largest roster CSV the API answers with, counted as the Lambda answer
/// carries it (a JSON string, at most 6 MB with its envelope): some 12,000
/// members. The downloads function streams any size.
pub const CSV_LIMIT_BYTES: usize = 6_000_000;

/// `GET /organizations/{organization_id}/members`: a page of the roster, or
/// with `Accept: text/csv` the whole of it as CSV (422 `export_too_large`
/// past [`CSV_LIMIT_BYTES`]).
pub async fn roster(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    organization: Uuid,
) -> Result<Response, ApiError> {
    let csv = request
        .header(header::ACCEPT)
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/csv"));
    let Roster {
        query,
        sort,
        direction,
        limit,
        sort_index,
        direction_index,
    } = roster_request(ctx, request, caller, organization, csv)?;
    if csv {
        let statement = sql::ROSTER_CSV[sort_index][direction_index];
        let mut text = Limited::escaped_in_json(CSV_LIMIT_BYTES);
        ctx.read(async |conn| roster_csv(ctx.registry, conn, &query, statement, &mut text).await)
            .await?;
        if text.is_over() {
            return Err(ApiError::unprocessable(
                "export_too_large",
                format!(
                    "this roster's CSV is larger than the API answers ({CSV_LIMIT_BYTES} bytes): \
                     GET /downloads/organizations/{organization}/members streams it whole"
                ),
            ));
        }
        let text = String::from_utf8(text.into_bytes())
            .map_err(|_| ApiError::Internal("the roster's CSV is not UTF-8".into()))?;
        return Ok(csv_response(text));
    }
    let statement = match query.after {
        None => sql::ROSTER_FIRST,
        Some(_) => sql::ROSTER_AFTER,
    }[sort_index][direction_index];
    let rows: Vec<PgRow> = ctx
        .read(async |conn| Ok(query.bind(statement).fetch_all(&mut *conn).await?))
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::Internal("the roster statement returned no row".into()))?;
    roster_access(first)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(member) = member(ctx.registry, row)? {
            items.push(member);
        }
    }
    let page = cursor::page(items, limit, |m| RosterCursor {
        sort,
        direction,
        key: m.sort_key.clone(),
        id: m.id,
    });
    let tools: Vec<&str> = ctx
        .registry
        .tools()
        .iter()
        .map(|t| t.slug.as_str())
        .collect();
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "organization_id": organization,
            "tools": tools,
            "items": page.items,
            "next_cursor": page.next_cursor,
        }),
    ))
}

fn roster_filter(ctx: &Context, request: &Request<'_>) -> Result<RosterFilter, ApiError> {
    let tool = match (request.query("tool")?, request.query("status")?) {
        (None, None) => None,
        (Some(slug), Some(status)) => {
            let tool = ctx.registry.tool(slug).ok_or_else(|| {
                // Not echoed: a message admits no U+0000, and a slug may hold one.
                ApiError::bad_request("invalid_filter", "`tool` names no registry tool")
            })?;
            let statuses = parse_statuses(status).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_filter",
                    "`status` must be locked, unlocked, in_progress, completed or not_completed",
                )
            })?;
            Some((tool, statuses))
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_filter",
                "`tool` and `status` are given together",
            ));
        }
    };
    let stuck_days = request
        .query("stuck_days")?
        .map(|d| {
            d.parse::<i32>()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or_else(|| {
                    ApiError::bad_request("invalid_filter", "`stuck_days` must be 1 to 3650")
                })
        })
        .transpose()?;
    let prefix = request.query("q")?.map(check_prefix).transpose()?;
    Ok(RosterFilter {
        tool,
        stuck_days,
        prefix,
    })
}

/// The whole roster as CSV, read row by row from the statement's stream: the
/// rows are never all held, only the text written so far (the answer's body,
/// which lambda_http sends in one piece, bounded by [`CSV_LIMIT_BYTES`]).
async fn roster_csv(
    registry: &'static Registry,
    conn: &mut PgConnection,
    query: &RosterQuery,
    statement: &'static str,
    out: &mut impl Out,
) -> Result<(), ApiError> {
    let io = |e: std::io::Error| ApiError::Internal(format!("writing the roster: {e}"));
    let tools = registry.tools();
    let mut record = String::with_capacity(4096);
    let mut header = vec![
        "id",
        "name",
        "email",
        "role",
        "progress_percent",
        "completed",
        "current_tool",
        "last_activity_at",
        "last_login_at",
    ];
    header.extend(tools.iter().map(|t| t.slug.as_str()));
    csv::push_record(&mut record, header);
    let mut rows = query.bind(statement).fetch(&mut *conn);
    let mut first = true;
    let time = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    while let Some(row) = rows.try_next().await? {
        if first {
            roster_access(&row)?;
            first = false;
        }
        let Some(m) = member(registry, &row)? else {
            continue;
        };
        let id = m.id.to_string();
        let percent = m.progress_percent.to_string();
        let completed = m.completed.to_string();
        let (activity, login) = (time(m.last_activity_at), time(m.last_login_at));
        let mut fields: Vec<&str> = vec![
            &id,
            &m.name,
            &m.email,
            &m.role,
            &percent,
            &completed,
            m.current_tool.unwrap_or_default(),
            &activity,
            &login,
        ];
        fields.extend(
            m.statuses
                .chars()
                .map(|c| status_of_code(c).map_or("", Status::as_str)),
        );
        csv::push_record(&mut record, fields);
        out.put(record.as_bytes()).await.map_err(io)?;
        record.clear();
    }
    if first {
        return Err(ApiError::Internal(
            "the roster statement returned no row".into(),
        ));
    }
    out.put(record.as_bytes()).await.map_err(io)?;
    Ok(())
}

/// `GET /downloads/organizations/{organization_id}/members`: the whole
/// roster as CSV, whatever its size, sent as its rows are read through the
/// downloads function's URL ([`stream::spawn`]); the same filters, order,
/// access rule and audit row as the roster's CSV.
pub async fn roster_streamed(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    organization: Uuid,
) -> Result<Streamed, ApiError> {
    let roster = roster_request(ctx, request, caller, organization, true)?;
    let statement = sql::ROSTER_CSV[roster.sort_index][roster.direction_index];
    let (pool, registry, query) = (ctx.pool.clone(), ctx.registry, roster.query);
    let body = stream::spawn(|mut chunks: Chunks| async move {
        let outcome = pool
            .read(async |conn| roster_csv(registry, conn, &query, statement, &mut chunks).await)
            .await;
        (chunks, outcome)
    })
    .await?;
    let mut response = Streamed::new(body);
    csv_headers(response.headers_mut());
    Ok(response)
}

fn csv_response(text: String) -> Response {
    let mut response = Response::new(Body::Text(text));
    csv_headers(response.headers_mut());
    response
}

fn csv_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"roster.csv\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

// ---------------------------------------------------------------- funnel

#[derive(Debug, Default, Serialize)]
struct ToolFunnel {
    slug: &'static str,
    locked: i64,
    unlocked: i64,
    in_progress: i64,
    completed: i64,
}

/// `GET /organizations/{organization_id}/funnel` (`Some`: its guru or an
/// admin; anyone else a 404) and `GET /funnel` (`None`: every user, for an
/// admin; anyone else a 403).
pub async fn funnel(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
    organization: Option<Uuid>,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let (slugs, initials) = tool_columns(ctx.registry);
    let rows: Vec<PgRow> = ctx
        .read(async |conn| {
            let statement = match organization {
                Some(_) => sql::ORGANIZATION_FUNNEL,
                None => sql::FUNNEL,
            };
            Ok(db::query(statement)
                .bind(caller.id())
                .bind(organization)
                .bind(request.id())
                .bind(&slugs)
                .bind(&initials)
                .fetch_all(&mut *conn)
                .await?)
        })
        .await?;
    let first = rows
        .first()
        .ok_or_else(|| ApiError::Internal("the funnel statement returned no row".into()))?;
    let role: Option<String> = first.try_get("caller_role")?;
    if role.is_none() {
        return Err(NO_CALLER);
    }
    if !first.try_get::<bool, _>("visible")? {
        return Err(match organization {
            Some(_) => ORGANIZATION_NOT_FOUND,
            None => ApiError::Forbidden("only an admin reads the funnel of every user"),
        });
    }
    let members: i64 = first.try_get("members")?;
    let mut tools = Vec::with_capacity(rows.len());
    for (row, tool) in rows.iter().zip(ctx.registry.tools()) {
        let mut counts = ToolFunnel {
            slug: tool.slug.as_str(),
            locked: row.try_get("locked")?,
            unlocked: row.try_get("unlocked")?,
            in_progress: row.try_get("in_progress")?,
            completed: row.try_get("completed")?,
        };
        // Members without a progress row for the tool are in its initial status.
        let missing =
            (members - counts.locked - counts.unlocked - counts.in_progress - counts.completed)
                .max(0);
        match Status::initial(tool) {
            Status::Unlocked => counts.unlocked += missing,
            _ => counts.locked += missing,
        }
        tools.push(counts);
    }
    Ok(response::json(
        StatusCode::OK,
        &json!({ "organization_id": organization, "members": members, "tools": tools }),
    ))
}

// ---------------------------------------------------------------- user search

#[derive(Debug, Serialize)]
struct FoundUser {
    id: Uuid,
    name: String,
    email: String,
    role: String,
    organization_id: Option<Uuid>,
    organization_name: Option<String>,
    completed: i64,
    progress_percent: u32,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    last_activity_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::foundation::rfc3339::option::serialize")]
    last_login_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    sort_key: String,
}

/// `GET /users?q=`: an admin's search of every user by name or email prefix.
pub async fn search_users(
    ctx: &Context,
    request: &Request<'_>,
    caller: Caller,
) -> Result<Response, ApiError> {
    request.allow_query(&["q", "cursor", "limit"])?;
    let prefix = request.query("q")?.map(check_prefix).transpose()?;
    let limit = request.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after: Option<(String, Uuid)> = request.cursor()?;
    let rows: Vec<PgRow> = ctx
        .read(async |conn| {
            Ok(db::query(sql::SEARCH_USERS)
                .bind(caller.id())
                .bind(prefix.as_deref())
                .bind(after.as_ref().map(|(key, _)| key.as_str()))
                .bind(after.as_ref().map(|(_, id)| *id))
                .bind(limit as i64 + 1)
                .bind(limit as i64)
                .bind(request.id())
                .fetch_all(&mut *conn)
                .await?)
        })
        .await?;
    let role: Option<String> = match rows.first() {
        Some(row) => row.try_get("caller_role")?,
        None => None,
    };
    match role.as_deref() {
        None => return Err(NO_CALLER),
        Some("admin") => {}
        Some(_) => return Err(ApiError::Forbidden("only an admin searches users")),
    }
    let tools = ctx.registry.tools().len();
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(id) = row.try_get::<Option<Uuid>, _>("id")? else {
            continue;
        };
        let completed: i64 = row.try_get("completed")?;
        items.push(FoundUser {
            id,
            name: display_name(&row.try_get::<String, _>("name")?),
            email: display_email(&row.try_get::<String, _>("email")?),
            role: row.try_get("role")?,
            organization_id: row.try_get("organization_id")?,
            organization_name: row
                .try_get::<Option<String>, _>("organization_name")?
                .as_deref()
                .map(display_name),
            completed,
            progress_percent: percent(completed, tools),
            last_activity_at: row.try_get("last_activity_at")?,
            last_login_at: row.try_get("last_login")?,
            sort_key: row.try_get("sort_key")?,
        });
    }
    let page = cursor::page(items, limit, |u| (u.sort_key.clone(), u.id));
    Ok(response::json(StatusCode::OK, &page))
}
