//! sync-user's two routes: a LearnWorlds webhook and a session launch, with
//! the launches signed for each wrk run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::call::{Bind, Body, Call, Route, Statement, pg_array, progress_statement};
use crate::fixtures::{launch_body, webhook_signature};
use crate::rng::Rng;
use shared::Registry;
use shared::foundation::db;
use shared::identity::users;
use shared::identity::webhooks;
use shared::sessions::launch::CLAIM_LAUNCH_SQL;

/// A generated participant as LearnWorlds knows them.
#[derive(sqlx::FromRow)]
struct Participant {
    id: Uuid,
    lms_user_id: String,
    email: String,
    full_name: String,
    organization_slug: String,
    organization_name: String,
}

const PARTICIPANTS_SQL: &str = "select u.id, u.lms_user_id::text, u.email::text, u.full_name::text,
        o.slug::text as organization_slug, o.name::text as organization_name
    from shared.users u join shared.organizations o on o.id = u.organization_id
    where u.role = 'user' order by u.id offset $1 limit $2";

/// The generated participants from `offset` on, `limit` of them (all when `None`).
async fn participants(pool: &PgPool, offset: i64, limit: Option<i64>) -> Result<Vec<Participant>> {
    db::query_as(PARTICIPANTS_SQL)
        .bind(offset)
        .bind(limit)
        .fetch_all(pool)
        .await
        .context("reading participants")
}

/// sync-user's calls for `calls` participants chosen with `seed`: the
/// statements of a webhook for an existing participant (`webhooks::receive`,
/// as the local server runs it: without LearnWorlds' API, so the delivery
/// updates the profile and keeps the organization),
/// or of their session launch (`App::create_session`: the launch and the
/// sync in one transaction, then their progress).
pub async fn sync_calls(
    pool: &PgPool,
    registry: &Registry,
    route: Route,
    calls: usize,
    seed: u64,
) -> Result<Vec<Call>> {
    let participants = participants(pool, 0, None).await?;
    if participants.is_empty() {
        bail!("the database has no participants: run `fasttrack-bench generate` first");
    }
    let (slugs, statuses) = users::initial_progress(registry);
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let initial = (pg_array(&slugs), pg_array(&statuses));
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(calls);
    for _ in 0..calls {
        let p = &participants[rng.below(participants.len() as u64) as usize];
        out.push(match route {
            Route::Webhook => webhook_call(p, &initial),
            Route::Launch => launch_call(p, &initial),
            _ => unreachable!("sampled by sample"),
        });
    }
    Ok(out)
}

/// The sync of `p`, with the progress a new user starts with (`initial`: the
/// slugs and statuses as array literals), keeping their organization.
fn sync_statement(p: &Participant, (slugs, statuses): &(String, String), login: bool) -> Statement {
    Statement {
        sql: users::SYNC_SQL.to_owned(),
        binds: vec![
            (Bind::Value(p.lms_user_id.clone()), "text"),
            (Bind::Value(p.email.clone()), "text"),
            (Bind::Value(p.full_name.clone()), "text"),
            (Bind::Null, "uuid"),
            (Bind::Value(slugs.clone()), "text[]"),
            (Bind::Value(statuses.clone()), "text[]"),
            (Bind::Value(login.to_string()), "bool"),
            // Neither a launch nor an unconfirmed delivery moves anyone.
            (Bind::Value("true".into()), "bool"),
            // No time of its own: a userUpdated delivery carries none.
            (Bind::Null, "timestamptz"),
        ],
    }
}

/// A userUpdated delivery for `p`, each request a new body.
fn webhook_call(p: &Participant, initial: &(String, String)) -> Call {
    let body = json!({
        "version": 2, "type": "userUpdated", "trigger": "user_updated",
        "school_id": "bench-school",
        "data": {"user": {
            "id": p.lms_user_id, "email": p.email, "username": "u{{N}}",
            "first_name": p.full_name, "tags": [format!("org:{}", p.organization_slug)],
            "fields": {"company": p.organization_name},
        }},
    })
    .to_string();
    let payload = body.replace("{{N}}", "0");
    Call {
        method: "POST",
        path: "/webhooks/learnworlds".into(),
        headers: vec![webhook_signature()],
        body: Body::Numbered(body),
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: webhooks::RECORD_USER_DELIVERY_SQL.to_owned(),
                binds: vec![
                    (Bind::Unique, "bytea"),
                    (Bind::Value("userUpdated".into()), "text"),
                    (Bind::Value("user_updated".into()), "text"),
                    (Bind::Value(p.lms_user_id.clone()), "text"),
                    (Bind::Value("synced".into()), "text"),
                    (Bind::Value(payload), "jsonb"),
                ],
            },
            sync_statement(p, initial, false),
            Statement::plain("COMMIT"),
        ],
    }
}

/// `p` opening a tool from LearnWorlds, with a launch signed for this request.
fn launch_call(p: &Participant, initial: &(String, String)) -> Call {
    Call {
        method: "POST",
        path: "/sessions".into(),
        headers: vec![],
        body: Body::Launch,
        statements: vec![
            Statement::plain("BEGIN"),
            Statement {
                sql: CLAIM_LAUNCH_SQL.to_owned(),
                binds: vec![
                    (Bind::Unique, "text"),
                    (Bind::Value(p.lms_user_id.clone()), "text"),
                ],
            },
            sync_statement(p, initial, true),
            progress_statement(p.id),
            Statement::plain("COMMIT"),
        ],
    }
}

/// Signed launches for one wrk run, `per_thread` for each of `threads` wrk
/// threads, one file each (`launches-<thread>.txt`, a launch body a line).
/// Each participant signs [`LAUNCHES_PER_PARTICIPANT`] launches at `now`,
/// each with its own nonce (as a double click would), all within the server's
/// 300 s limit for the next minutes; `run` picks participants no earlier run
/// used and names the nonces, so no launch repeats an earlier run's (a launch
/// is refused a second time).
pub async fn launch_files(
    pool: &PgPool,
    dir: &Path,
    run: usize,
    threads: usize,
    per_thread: usize,
    now: i64,
) -> Result<()> {
    let needed = (threads * per_thread).div_ceil(LAUNCHES_PER_PARTICIPANT);
    let participants = participants(pool, (run * needed) as i64, Some(needed as i64)).await?;
    if participants.len() < needed {
        bail!(
            "session launches need {needed} participants a run that no earlier run used; \
             generate more users"
        );
    }
    let mut launches = Vec::with_capacity(threads * per_thread);
    'fill: for p in &participants {
        for n in 0..LAUNCHES_PER_PARTICIPANT {
            if launches.len() == threads * per_thread {
                break 'fill;
            }
            launches.push(launch_body(
                &p.lms_user_id,
                &p.email,
                &p.full_name,
                now,
                Some(&format!("bench-{run}-{n}")),
            ));
        }
    }
    // In a random order, so that concurrent launches are of different
    // participants, as in a school, and do not queue for one user's row.
    let mut rng = Rng::new(0x5e55_1075 ^ run as u64);
    for i in (1..launches.len()).rev() {
        launches.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut files = vec![String::with_capacity(per_thread * 320); threads];
    for (i, launch) in launches.iter().enumerate() {
        let _ = writeln!(files[i % threads], "{launch}");
    }
    for (i, text) in files.iter().enumerate() {
        let path = dir.join(format!("launches-{}.txt", i + 1));
        std::fs::write(&path, text).with_context(|| path.display().to_string())?;
    }
    Ok(())
}

/// Launches each participant signs for a run (see [`launch_files`]).
pub const LAUNCHES_PER_PARTICIPANT: usize = 300;
