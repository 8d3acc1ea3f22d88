//! Round trips per request: each route called by fresh participants on the
//! local server, counted with pg_stat_statements.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use uuid::Uuid;

use super::options::{Options, SEED};
use crate::database;
use crate::fixtures::{launch_body, webhook_request};
use crate::http;
use crate::load;
use crate::report::{Budget, Row};
use crate::rng::Rng;
use crate::server::Server;
use shared::Registry;
use shared::foundation::db;
use shared::identity::users;
use shared::sessions::TokenKeys;

struct RoundTripCase {
    name: &'static str,
    budget: Budget,
    requests: Vec<http::Request>,
    /// Text every answer's body must contain (besides a 2xx status).
    expect: &'static str,
}

pub async fn round_trips(
    options: &Options,
    url: &str,
    keys: &TokenKeys,
    work: &Path,
) -> Result<Vec<Row>> {
    let pool = database::connect(url, 2).await?;
    db::query("create extension if not exists pg_stat_statements")
        .execute(&pool)
        .await
        .context("pg_stat_statements is needed to count round trips (shared_preload_libraries)")?;
    let k = options.round_trip_requests.max(1);
    let now = chrono::Utc::now().timestamp();
    let mut rng = Rng::new(SEED ^ now as u64);
    let fresh = fresh_participants(&pool, k, &mut rng).await?;
    let auth = Auth {
        keys,
        now: now as u64,
    };
    let cases = cases(&fresh, &auth, now, &mut rng)?;

    let server = Server::start(&options.bin_dir, url, 2, &work.join("server-rt.log"))?;
    let mut rows = Vec::new();
    for case in cases {
        rows.push(count(&pool, &server, &case, &auth, fresh[0]).await?);
    }
    drop(server);
    pool.close().await;
    Ok(rows)
}

/// New participants, so that submitting woop unlocks what follows it.
async fn fresh_participants(pool: &PgPool, k: usize, rng: &mut Rng) -> Result<Vec<Uuid>> {
    let mut fresh = Vec::new();
    for i in 0..k {
        let lms = format!("{:024x}", rng.next() as u128 * 1_000 + i as u128);
        let user = users::LmsUser {
            lms_user_id: lms[..24].to_owned(),
            email: format!("rt-{lms}@bench.test"),
            full_name: format!("Round Trip {i}"),
            organization: users::Membership::Unchanged,
        };
        let mut conn = pool.acquire().await?;
        let synced = users::sync(&mut conn, Registry::embedded(), &user, false).await?;
        fresh.push(synced.id);
    }
    Ok(fresh)
}

/// Bearer tokens for the participants, issued at `now`.
struct Auth<'a> {
    keys: &'a TokenKeys,
    now: u64,
}

impl Auth<'_> {
    fn bearer(&self, user: Uuid) -> Result<String> {
        Ok(format!("Bearer {}", self.keys.issue(user, self.now)?.0))
    }

    fn get(&self, path: &str, user: Uuid) -> Result<http::Request> {
        Ok(http::Request {
            method: "GET",
            path: path.to_owned(),
            headers: vec![("authorization", self.bearer(user)?)],
            body: None,
        })
    }

    fn put(&self, user: Uuid, slug: &str, body: String) -> Result<http::Request> {
        Ok(http::Request {
            method: "PUT",
            path: format!("/tools/{slug}/submission"),
            headers: vec![
                ("authorization", self.bearer(user)?),
                ("content-type", "application/json".into()),
            ],
            body: Some(body),
        })
    }
}

/// Every case, each with a request per fresh participant.
fn cases(fresh: &[Uuid], auth: &Auth<'_>, now: i64, rng: &mut Rng) -> Result<Vec<RoundTripCase>> {
    let each = |path: &str| -> Result<Vec<http::Request>> {
        fresh.iter().map(|user| auth.get(path, *user)).collect()
    };
    let (unlocking, drafts) = saves(fresh, auth, rng)?;
    let (webhooks, launches) = syncs(fresh.len(), now, rng)?;
    Ok(vec![
        RoundTripCase {
            name: "get-progress (GET /progress)",
            budget: Budget::ValueEquals(1.0),
            requests: each("/progress")?,
            expect: "\"tools\"",
        },
        RoundTripCase {
            name: "resolve-dependencies (GET /tools/dream/dependencies)",
            budget: Budget::ValueEquals(1.0),
            requests: each("/tools/dream/dependencies")?,
            expect: "\"dependencies\"",
        },
        RoundTripCase {
            name: "submit-tool: submit that unlocks (PUT woop)",
            budget: Budget::ValueAtMost(4.0),
            requests: unlocking,
            expect: "know-thyself",
        },
        RoundTripCase {
            name: "submit-tool: draft save (PUT know-thyself)",
            budget: Budget::None,
            requests: drafts,
            expect: "\"draft\"",
        },
        RoundTripCase {
            name: "submit-tool: read (GET /tools/woop/submission)",
            budget: Budget::None,
            requests: each("/tools/woop/submission")?,
            expect: "\"submission\"",
        },
        RoundTripCase {
            name: "sync-user: webhook, new user (POST /webhooks/learnworlds)",
            budget: Budget::None,
            requests: webhooks,
            expect: "",
        },
        RoundTripCase {
            name: "sync-user: session launch, new user (POST /sessions)",
            budget: Budget::None,
            requests: launches,
            expect: "\"token\"",
        },
    ])
}

type Requests = Vec<http::Request>;

/// Each participant's submit of woop (which unlocks the tools after it), and
/// a draft of know-thyself.
fn saves(fresh: &[Uuid], auth: &Auth<'_>, rng: &mut Rng) -> Result<(Requests, Requests)> {
    let registry = Registry::embedded();
    let woop = registry.tool("woop").context("no woop in the registry")?;
    let mut unlocking = Vec::new();
    let mut drafts = Vec::new();
    for user in fresh {
        let call = load::submit_call(registry, woop, *user, None, String::new(), rng);
        unlocking.push(auth.put(*user, "woop", call.body.fixed().unwrap_or_default())?);
        drafts.push(auth.put(
            *user,
            "know-thyself",
            r#"{"data": {"dream": "A bakery on every corner"}, "status": "draft"}"#.into(),
        )?);
    }
    Ok((unlocking, drafts))
}

/// `k` webhooks and `k` session launches, each for a new LearnWorlds user.
fn syncs(k: usize, now: i64, rng: &mut Rng) -> Result<(Requests, Requests)> {
    let webhook_template = serde_json::from_str::<serde_json::Value>(include_str!(
        "../../../events/learnworlds-webhook.json"
    ))?["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (mut webhooks, mut launches) = (Vec::new(), Vec::new());
    for i in 0..k {
        let lms = format!("64d{:021x}", rng.next() as u128 * 100 + i as u128);
        let lms = &lms[..24];
        webhooks.push(webhook_request(
            webhook_template
                .replace("64b0000000000000000000e1", lms)
                .replace("event@example.com", &format!("webhook-{lms}@bench.test")),
        ));
        let email = format!("launch-{lms}@bench.test");
        launches.push(http::Request {
            method: "POST",
            path: "/sessions".into(),
            headers: vec![("content-type", "application/json".into())],
            body: Some(launch_body(
                lms,
                &email,
                "Launch Bench",
                now,
                Some("round-trips"),
            )),
        });
    }
    Ok((webhooks, launches))
}

/// The statements PostgreSQL ran per request of `case`, after a warm-up
/// request by `warm_user` so that connecting is not counted.
async fn count(
    pool: &PgPool,
    server: &Server,
    case: &RoundTripCase,
    auth: &Auth<'_>,
    warm_user: Uuid,
) -> Result<Row> {
    http::send(server.port, &auth.get("/progress", warm_user)?)?;
    db::query("select pg_stat_statements_reset()")
        .execute(pool)
        .await?;
    for request in &case.requests {
        let (status, body) = http::send(server.port, request)?;
        if !(200..300).contains(&status) || !body.contains(case.expect) {
            bail!(
                "{}: answered {status}, expected 2xx with {:?}: {body:.300}",
                case.name,
                case.expect
            );
        }
    }
    let calls: i64 = db::query_scalar(
        "select coalesce(sum(calls), 0)::bigint from pg_stat_statements
         where dbid = (select oid from pg_database where datname = current_database())
           and query not ilike '%pg_stat_statements%'",
    )
    .fetch_one(pool)
    .await?;
    Ok(Row::info(
        format!("round trips per request: {}", case.name),
        calls as f64 / case.requests.len() as f64,
        "",
    )
    .budget(case.budget))
}
