//! Staff reports over one large organization: a roster page (page 1 and a
//! page deep in the keyset), the funnel and three staff actions (a member's
//! profile and their comments on a tool, read; a comment, written) under wrk
//! against the local server,
//! beside pgbench running each one's statement over the same concurrencies,
//! as the routes are measured (best against peak, p99 against pgbench's);
//! their round trips, and the CSV download's, from pg_stat_statements; the
//! audit row's share of a roster page (the statement with and without it,
//! both in pgbench); and the peak memory of the downloads function streaming
//! the whole roster as CSV.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::options::Options;
use super::routes::{Measured, route_rows};
use crate::cold_start::{self, Function};
use crate::database;
use crate::fixtures::service_env;
use crate::http;
use crate::load::{self, Bind, Body, Call, Statement};
use crate::report::{Budget, Row, median, step};
use crate::server::Server;
use shared::Registry;
use shared::audit;
use shared::foundation::db;
use shared::http::cursor;
use shared::reports::{sql, tool_columns};
use shared::sessions::TokenKeys;
use shared::staff::{self, comments, profile};

/// The name the reports' guru signs comments with.
const GURU_NAME: &str = "Bench Guru";

/// A roster page's rows, as a coach's screen asks for them.
const PAGE: usize = 100;
/// The deep page, when the organization has that many.
const DEEP_PAGE: usize = 90;

/// What one report is measured as: its request, and its statement for pgbench.
struct Report {
    name: String,
    call: Call,
    /// Further calls of the same kind (other members), when it has them.
    more: Vec<Call>,
}

impl Report {
    fn single(name: String, call: Call) -> Self {
        Self {
            name,
            call,
            more: Vec::new(),
        }
    }

    /// The calls wrk and pgbench are given: [`load::CALLS`] of them.
    fn calls(&self) -> Vec<Call> {
        std::iter::once(&self.call)
            .chain(&self.more)
            .cycle()
            .take(load::CALLS)
            .cloned()
            .collect()
    }
}

pub async fn reports(
    options: &Options,
    url: &str,
    keys: &TokenKeys,
    work: &Path,
) -> Result<Vec<Row>> {
    let pool = database::connect(url, 2).await?;
    let (organization, members): (Uuid, i64) = db::query_as(
        "select o.id, count(u.id) from shared.organizations o
         join shared.users u on u.organization_id = o.id
         group by o.id order by 2 desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .context("the reports database has no organization")?;
    let guru = guru_of(&pool, organization).await?;
    let token = keys.issue(guru, chrono::Utc::now().timestamp() as u64)?.0;
    let pgbench = load::find_pgbench(options.pgbench.as_deref())?;

    let server = Server::start(
        &options.bin_dir,
        url,
        options.concurrency.iter().copied().max().unwrap_or(1),
        &work.join("server-reports.log"),
    )?;
    let pages = members as usize / PAGE;
    let deep = DEEP_PAGE.min(pages.max(1));
    let cursor = cursor_of_page(server.port, organization, &token, deep)?;
    let members_sample = members_of(&pool, organization, load::CALLS).await?;
    let reports = [
        roster_report(organization, guru, &token, None, 1),
        roster_report(organization, guru, &token, cursor, deep),
        funnel_report(organization, guru, &token),
        profile_report(guru, &token, &members_sample),
        comments_report(guru, &token, &members_sample),
        // Last: the comments it adds would lengthen the read above.
        comment_post_report(guru, organization, &token, &members_sample),
    ];

    let mut rows = Vec::new();
    let mut page_scripts = Vec::new();
    for report in &reports {
        step(&format!("reports: {} against pgbench", report.name));
        let dir = work.join(report.name.replace([' ', '\''], "-"));
        std::fs::create_dir_all(&dir)?;
        let calls = report.calls();
        let script = dir.join("wrk.lua");
        std::fs::write(&script, load::wrk_script(&calls, "reports", &dir))?;
        let pgbench_args = load::pgbench_args(&calls, &dir)?;
        // The server's pool at its size, these statements prepared on it.
        let most = options.concurrency.iter().copied().max().unwrap_or(1);
        load::run_wrk(server.port, &script, most, 1).context("warming the server's pool")?;
        let mut measured: Vec<(usize, Measured)> = Vec::new();
        for &c in &options.concurrency {
            let mut at = Measured::default();
            for _ in 0..options.load_runs.max(1) {
                at.ours
                    .push(load::run_wrk(server.port, &script, c, options.seconds)?);
                at.anchor.push(load::run_pgbench_timed(
                    &pgbench,
                    url,
                    &pgbench_args,
                    c,
                    options.seconds,
                    &dir.join("pgbench-log"),
                )?);
            }
            measured.push((c, at));
        }
        let name = format!("{} ({members} members)", report.name);
        rows.extend(route_rows(&name, &measured));
        if let Some((_, at_one)) = measured.iter().find(|(c, _)| *c == 1) {
            let (ours, theirs) = (at_one.ours(), at_one.anchor());
            let row = Row::info(format!("{}: p50 at c=1", report.name), ours.p50_ms, "ms")
                .against("pgbench, the same SQL, c=1", theirs.p50_ms);
            rows.push(if report.name.starts_with("funnel") {
                row.budget(Budget::ValueAtMost(50.0))
            } else {
                row
            });
        }
        if report.name.starts_with("roster") {
            page_scripts.push(script);
        }
    }
    rows.extend(round_trips(&pool, server.port, &reports, organization, &token, options).await?);
    settle(&pool).await?;
    if let [first, deep_page] = &page_scripts[..] {
        rows.push(deep_page_beside_first(
            options,
            &server,
            [first.as_path(), deep_page.as_path()],
            deep,
        )?);
    }
    drop(server);

    rows.extend(audit_share(options, url, &pgbench, &reports[0], work)?);
    rows.push(csv_peak_rss(options, url, organization, &token, members).await?);
    pool.close().await;
    Ok(rows)
}

/// Statements per request of each report, and of the roster's CSV download
/// through the local server, counted with pg_stat_statements.
async fn round_trips(
    pool: &PgPool,
    port: u16,
    reports: &[Report],
    organization: Uuid,
    token: &str,
    options: &Options,
) -> Result<Vec<Row>> {
    step("reports: round trips per request, from pg_stat_statements");
    db::query("create extension if not exists pg_stat_statements")
        .execute(pool)
        .await
        .context("pg_stat_statements is needed to count round trips (shared_preload_libraries)")?;
    let request = |call: &Call| {
        let body = call.body.clone().fixed();
        let mut headers = call.headers.clone();
        if body.is_some() {
            headers.push(("content-type", "application/json".into()));
        }
        http::Request {
            method: call.method,
            path: call.path.clone(),
            headers,
            body,
        }
    };
    let k = options.round_trip_requests.max(1);
    let mut cases: Vec<(String, Vec<http::Request>, usize)> = reports
        .iter()
        .map(|r| (r.name.clone(), r.calls().iter().map(request).collect(), k))
        .collect();
    let csv = http::Request {
        method: "GET",
        path: format!("/downloads/organizations/{organization}/members?sort=name"),
        headers: vec![
            ("authorization", format!("Bearer {token}")),
            ("accept", "text/csv".into()),
        ],
        body: None,
    };
    // The whole roster, once: a download is long, and one is enough to count.
    cases.push(("the roster as CSV (downloads)".into(), vec![csv], 1));
    let mut rows = Vec::new();
    for (name, requests, times) in cases {
        // One request first, so that connecting and preparing are not counted.
        http::send(port, &requests[0])?;
        db::query("select pg_stat_statements_reset()")
            .execute(pool)
            .await?;
        let sent: Vec<&http::Request> = requests.iter().cycle().take(times).collect();
        for request in &sent {
            let (status, body) = http::send(port, request)?;
            if !(200..300).contains(&status) {
                bail!("{name}: answered {status}: {body:.300}");
            }
        }
        let calls: i64 = db::query_scalar(
            "select coalesce(sum(calls), 0)::bigint from pg_stat_statements
             where dbid = (select oid from pg_database where datname = current_database())
               and query not ilike '%pg_stat_statements%'",
        )
        .fetch_one(pool)
        .await?;
        let row = Row::info(
            format!("round trips per request: {name}"),
            calls as f64 / sent.len() as f64,
            "",
        );
        // A read is one statement; a write's transaction is information.
        rows.push(if sent[0].method == "GET" {
            row.budget(Budget::ValueEquals(1.0))
        } else {
            row
        });
    }
    Ok(rows)
}

/// A guru of `organization`, made for the run when it has none.
async fn guru_of(pool: &PgPool, organization: Uuid) -> Result<Uuid> {
    Ok(db::query_scalar(
        "insert into shared.users (lms_user_id, email, full_name, organization_id, role)
         values ('bench-reports-guru', 'bench-reports-guru@bench.test', $2, $1, 'guru')
         on conflict (lms_user_id) do update
             set organization_id = excluded.organization_id, role = 'guru', full_name = $2
         returning id",
    )
    .bind(organization)
    .bind(GURU_NAME)
    .fetch_one(pool)
    .await?)
}

/// The cursor that opens page `page` of the roster by name, walked to from
/// page 1 as a coach's screen would (`None`: page 1).
fn cursor_of_page(
    port: u16,
    organization: Uuid,
    token: &str,
    page: usize,
) -> Result<Option<String>> {
    let mut cursor: Option<String> = None;
    for _ in 1..page {
        let path = roster_path(organization, cursor.as_deref());
        let request = http::Request {
            method: "GET",
            path,
            headers: vec![("authorization", format!("Bearer {token}"))],
            body: None,
        };
        let (status, body) = http::send(port, &request)?;
        if status != 200 {
            bail!("the roster answered {status}: {body}");
        }
        let page: Value = serde_json::from_str(&body)?;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(cursor)
}

fn roster_path(organization: Uuid, cursor: Option<&str>) -> String {
    let mut path = format!("/organizations/{organization}/members?sort=name&limit={PAGE}");
    if let Some(cursor) = cursor {
        path.push_str("&cursor=");
        path.push_str(cursor);
    }
    path
}

/// The slugs and initial statuses every report binds ($4 and $5).
fn registry_binds() -> Vec<(Bind, &'static str)> {
    let (slugs, initials) = tool_columns(Registry::embedded());
    vec![
        (Bind::Value(load::pg_array(&slugs)), "text[]"),
        (Bind::Value(load::pg_array(&initials)), "text[]"),
    ]
}

/// A page of the roster by name, ascending: page 1, or the page `cursor` opens.
fn roster_report(
    organization: Uuid,
    guru: Uuid,
    token: &str,
    cursor: Option<String>,
    page: usize,
) -> Report {
    let after = cursor.as_deref().map(decode_cursor);
    let statement = match after {
        None => sql::ROSTER_FIRST[0][0],
        Some(_) => sql::ROSTER_AFTER[0][0],
    };
    let mut binds = vec![
        (Bind::Value(guru.to_string()), "uuid"),
        (Bind::Value(organization.to_string()), "uuid"),
        (Bind::Value("bench".into()), "text"),
    ];
    binds.extend(registry_binds());
    binds.extend([
        (Bind::Null, "text"),
        (Bind::Null, "text"),
        (Bind::Null, "text[]"),
        (Bind::Null, "int4"),
        (Bind::Null, "text"),
    ]);
    match &after {
        Some((key, id)) => binds.extend([
            (Bind::Value(key.clone()), "text"),
            (Bind::Value(id.to_string()), "uuid"),
        ]),
        None => binds.extend([(Bind::Null, "text"), (Bind::Null, "uuid")]),
    }
    binds.extend([
        (Bind::Value((PAGE + 1).to_string()), "int8"),
        (Bind::Value(PAGE.to_string()), "int8"),
    ]);
    Report::single(
        format!("roster page {page}"),
        Call {
            method: "GET",
            path: roster_path(organization, cursor.as_deref()),
            headers: load::bearer(token.to_owned()),
            body: Body::None,
            statements: vec![Statement {
                sql: statement.to_owned(),
                binds,
            }],
        },
    )
}

/// The sort key and id a roster cursor carries.
fn decode_cursor(cursor: &str) -> (String, Uuid) {
    let key: Value = cursor::decode(cursor).expect("the roster's own cursor decodes");
    let id = key["id"].as_str().and_then(|id| id.parse().ok());
    (
        key["key"].as_str().unwrap_or_default().to_owned(),
        id.expect("a roster cursor holds an id"),
    )
}

fn funnel_report(organization: Uuid, guru: Uuid, token: &str) -> Report {
    let mut binds = vec![
        (Bind::Value(guru.to_string()), "uuid"),
        (Bind::Value(organization.to_string()), "uuid"),
        (Bind::Value("bench".into()), "text"),
    ];
    binds.extend(registry_binds());
    Report::single(
        "funnel of the organization".into(),
        Call {
            method: "GET",
            path: format!("/organizations/{organization}/funnel"),
            headers: load::bearer(token.to_owned()),
            body: Body::None,
            statements: vec![Statement {
                sql: sql::ORGANIZATION_FUNNEL.to_owned(),
                binds,
            }],
        },
    )
}

/// Members of `organization` (not its guru), as many as `k`.
async fn members_of(pool: &PgPool, organization: Uuid, k: usize) -> Result<Vec<Uuid>> {
    let members: Vec<Uuid> = db::query_scalar(
        "select id from shared.users where organization_id = $1 and role = 'user'
         order by id limit $2",
    )
    .bind(organization)
    .bind(k as i64)
    .fetch_all(pool)
    .await?;
    ensure!(!members.is_empty(), "the organization has no participants");
    Ok(members)
}

/// A staff action: the guru reading a member's profile (`GET /users/{id}`),
/// the read audited by its one statement.
fn profile_report(guru: Uuid, token: &str, members: &[Uuid]) -> Report {
    let call = |member: &Uuid| Call {
        method: "GET",
        path: format!("/users/{member}"),
        headers: load::bearer(token.to_owned()),
        body: Body::None,
        statements: vec![Statement {
            sql: profile::GET_SQL.to_owned(),
            binds: vec![
                (Bind::Value(guru.to_string()), "uuid"),
                (Bind::Value(member.to_string()), "uuid"),
                (Bind::Value("bench".into()), "text"),
            ],
        }],
    };
    Report {
        name: "staff action: a member's profile".into(),
        call: call(&members[0]),
        more: members[1..].iter().map(call).collect(),
    }
}

/// A staff action: the guru reading a member's comments on a tool
/// (`GET /users/{id}/tools/{slug}/comments`), audited by its one statement.
fn comments_report(guru: Uuid, token: &str, members: &[Uuid]) -> Report {
    const TOOL: &str = "woop";
    let call = |member: &Uuid| Call {
        method: "GET",
        path: format!("/users/{member}/tools/{TOOL}/comments"),
        headers: load::bearer(token.to_owned()),
        body: Body::None,
        statements: vec![Statement {
            sql: comments::STAFF_LIST_SQL.to_owned(),
            binds: vec![
                (Bind::Value(guru.to_string()), "uuid"),
                (Bind::Value(member.to_string()), "uuid"),
                (Bind::Value(TOOL.into()), "text"),
                (Bind::Value("bench".into()), "text"),
                (Bind::Value(comments::MAX_COMMENTS.to_string()), "int8"),
            ],
        }],
    };
    Report {
        name: "staff action: a member's comments on a tool".into(),
        call: call(&members[0]),
        more: members[1..].iter().map(call).collect(),
    }
}

/// A staff action that writes: the guru commenting on a member's tool
/// (`POST /users/{id}/tools/{slug}/comments`), over 32 members. Its
/// transaction as the handler runs it, statement by statement: the caller and
/// whether they see the member, the member's row locked, the comment, its
/// audit row. A comment can be posted again and again, where an unlock or a
/// reopen is refused after its first time (a tool unlocked, a submission
/// reopened), so it is the write wrk can repeat.
fn comment_post_report(guru: Uuid, organization: Uuid, token: &str, members: &[Uuid]) -> Report {
    const TOOL: &str = "woop";
    const BODY: &str = "Your wish reads well: make the outcome one you can picture.";
    let value = |v: &str| Bind::Value(v.to_owned());
    let call = |member: &Uuid| Call {
        method: "POST",
        path: format!("/users/{member}/tools/{TOOL}/comments"),
        headers: load::bearer(token.to_owned()),
        body: Body::Fixed(serde_json::json!({ "body": BODY }).to_string()),
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: staff::ACTING_SQL.to_owned(),
                binds: vec![
                    (value(&guru.to_string()), "uuid"),
                    (value(&member.to_string()), "uuid"),
                ],
            },
            Statement {
                sql: staff::LOCK_TARGET_SQL.to_owned(),
                binds: vec![(value(&member.to_string()), "uuid")],
            },
            Statement {
                sql: comments::INSERT_SQL.to_owned(),
                binds: vec![
                    (value(&member.to_string()), "uuid"),
                    (value(TOOL), "text"),
                    (value(&guru.to_string()), "uuid"),
                    (value("guru"), "text"),
                    (value(GURU_NAME), "text"),
                    (value(BODY), "text"),
                ],
            },
            Statement {
                sql: audit::RECORD_SQL.to_owned(),
                binds: vec![
                    (value(&guru.to_string()), "uuid"),
                    (value("guru"), "text"),
                    (value(audit::Action::Comment.as_str()), "text"),
                    (value(&format!("{{{member}}}")), "uuid[]"),
                    (value(&organization.to_string()), "uuid"),
                    (value(TOOL), "text"),
                    (Bind::Null, "text"),
                    (value("bench"), "text"),
                    (Bind::Null, "jsonb"),
                    (
                        value(&serde_json::json!({ "comment_id": Uuid::new_v4() }).to_string()),
                        "jsonb",
                    ),
                ],
            },
            Statement::plain("COMMIT"),
        ],
    };
    Report {
        name: "staff action: a comment on a member's tool".into(),
        call: call(&members[0]),
        more: members[1..].iter().map(call).collect(),
    }
}

/// The state the side-by-side measures below start from: the load's
/// million audit rows (and the staff write's comments) vacuumed and analysed. Left to autovacuum, its pass over
/// `shared.audit_log` lands in the middle of one of them, and slows only the
/// side that inserts (2026-12-07: 4.67 against 2.98 ms in one full run, 4.48
/// against 4.68 in the next).
/// Autovacuum elsewhere on the server (the large database, after the load)
/// is waited out as well (`database::autovacuum_idle`).
async fn settle(pool: &PgPool) -> Result<()> {
    step("reports: vacuum and analyse what the load wrote, before the side-by-side measures");
    db::query(
        "vacuum (analyze) shared.audit_log, shared.comments, shared.users, shared.user_progress",
    )
    .execute(pool)
    .await?;
    database::autovacuum_idle(pool).await?;
    Ok(())
}

/// Whether a keyset page deep in the roster is as fast as the first: both
/// through the local server at c=1, in alternating rounds, the order swapped
/// each round (a noisy moment hurts both alike), each round's p50 from wrk; the figure is the median
/// over the rounds.
fn deep_page_beside_first(
    options: &Options,
    server: &Server,
    [first, deep_page]: [&Path; 2],
    deep: usize,
) -> Result<Row> {
    step(&format!(
        "reports: roster page {deep} beside page 1, alternating at c=1"
    ));
    let mut p50s = [Vec::new(), Vec::new()];
    let scripts = [first, deep_page];
    for round in 0..options.runs.max(3) {
        // A, B, then B, A, as the audit row's share below.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            p50s[i].push(load::run_wrk(server.port, scripts[i], 1, options.seconds)?.p50_ms);
        }
    }
    let [first_p50, deep_p50] = p50s.map(median);
    Ok(Row::info(
        format!("roster page {deep} p50 at c=1, beside page 1's (alternating rounds)"),
        deep_p50,
        "ms",
    )
    .against("page 1", first_p50)
    .budget(Budget::RatioAtMost(1.25)))
}

/// The audit row's share of a roster page: pgbench runs the page's statement
/// as it is, and with its audit insert taken out, at c=1, in alternating
/// rounds, the order swapped each round (so that a noisy moment, or the
/// disk's flush times drifting, hurts both alike). Each round's median latency comes from pgbench's log; the
/// figure is the median over the rounds. The median, not the mean: the audit
/// row's commit waits for a WAL flush, whose time on a shared virtual disk has
/// a long tail that says more about the disk than about the row.
fn audit_share(
    options: &Options,
    url: &str,
    pgbench: &Path,
    page: &Report,
    work: &Path,
) -> Result<Vec<Row>> {
    step("reports: a roster page with and without its audit row");
    let with = page.call.clone();
    let mut without = page.call.clone();
    let audit_start = without.statements[0]
        .sql
        .find("audit as (")
        .context("the roster statement has an audit CTE")?;
    let audit_end = without.statements[0].sql[audit_start..]
        .find("returning 1")
        .context("the audit CTE returns 1")?
        + audit_start
        + "returning 1".len();
    without.statements[0]
        .sql
        .replace_range(audit_start..audit_end, "audit as (select 1");
    let mut p50s = [Vec::new(), Vec::new()];
    let mut p99s = [Vec::new(), Vec::new()];
    let calls = [&with, &without];
    for round in 0..AUDIT_SHARE_ROUNDS.max(options.runs) {
        // A, B, then B, A: a drift over the rounds favours neither side.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let call = calls[i];
            let dir = work.join(format!("audit-share-{i}"));
            std::fs::create_dir_all(&dir)?;
            let args = load::pgbench_args(std::slice::from_ref(call), &dir)?;
            let measured =
                load::run_pgbench_timed(pgbench, url, &args, 1, options.seconds, &dir.join("log"))?;
            p50s[i].push(measured.p50_ms);
            p99s[i].push(measured.p99_ms);
        }
    }
    let [with_p50, without_p50] = p50s.map(median);
    let [with_p99, without_p99] = p99s.map(median);
    Ok(vec![
        Row::info(
            "roster page 1 with its audit row, p50 (pgbench, c=1)",
            with_p50,
            "ms",
        )
        .against("the same statement without it", without_p50)
        .budget(Budget::RatioAtMost(1.10)),
        Row::info("  the same, p99 (the WAL flush's tail)", with_p99, "ms")
            .against("the same statement without it", without_p99),
    ])
}

/// Alternating rounds of the audit row's side-by-side measure. The row costs
/// about 0.05 ms of a 3 to 4.5 ms statement (pgbench's averages, alternated,
/// 2026-12-07), less than one round's p50 moves with the machine: 5 rounds
/// gave 0.96, 1.05, 1.10 and 1.57 in four runs.
const AUDIT_SHARE_ROUNDS: usize = 7;

/// Peak resident memory of the downloads function streaming the whole roster
/// as CSV (`GET /downloads/organizations/{id}/members`), once, from a fresh
/// process.
async fn csv_peak_rss(
    options: &Options,
    url: &str,
    organization: Uuid,
    token: &str,
    members: i64,
) -> Result<Row> {
    step("reports: the downloads function's memory streaming the whole roster as CSV");
    let owner = database::connect(url, 1).await?;
    let runtime = database::runtime_url(&owner, url).await?;
    owner.close().await;
    let mut event: Value =
        serde_json::from_str(include_str!("../../../events/download-roster.json"))?;
    let path = format!("/downloads/organizations/{organization}/members");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["pathParameters"]["organization_id"] = organization.to_string().into();
    event["rawQueryString"] = "sort=name".into();
    event["queryStringParameters"] = serde_json::json!({"sort": "name"});
    event["headers"]["accept"] = "text/csv".into();
    event["headers"]["authorization"] = format!("Bearer {token}").into();
    let binary = options.bin_dir.join("downloads");
    let env = service_env(&runtime, 2);
    let function = Function {
        name: "downloads",
        binary: &binary,
        event: event.to_string(),
        env: &env,
    };
    Ok(Row::info(
        format!("peak RSS: downloads, the roster of {members} streamed as CSV"),
        cold_start::peak_rss_mib(&function, 1).await?,
        "MiB",
    )
    .budget(Budget::ValueAtMost(40.0)))
}
