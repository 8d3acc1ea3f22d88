//! Sampling a route's calls from the generated data.

use anyhow::{Context, Result, bail};
use sqlx::PgPool;
use uuid::Uuid;

use super::call::{Bind, Body, Call, Route, Statement, bearer, pg_array, progress_statement};
use super::submit::submit_call;
use super::sync_user::sync_calls;
use crate::rng::Rng;
use shared::Registry;
use shared::dependencies;
use shared::foundation::db;
use shared::sessions::TokenKeys;

/// `calls` requests of `route` by users of the generated data, chosen with
/// `seed`. Submits go only to tools the user has started or completed (so has
/// a submission of, which wrk's repeated submits update), with every field
/// filled, as a participant submitting would.
pub async fn sample(
    pool: &PgPool,
    registry: &Registry,
    keys: &TokenKeys,
    route: Route,
    calls: usize,
    seed: u64,
) -> Result<Vec<Call>> {
    if matches!(route, Route::Webhook | Route::Launch) {
        return sync_calls(pool, registry, route, calls, seed).await;
    }
    let users: Vec<(Uuid, Option<Uuid>)> = db::query_as(
        "select id, organization_id from shared.users where role = 'user' order by id",
    )
    .fetch_all(pool)
    .await
    .context("reading users")?;
    if users.is_empty() {
        bail!("the database has no users: run `fasttrack-bench generate` first");
    }
    let now = chrono::Utc::now().timestamp() as u64;
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(calls);
    let mut attempts = 0;
    while out.len() < calls {
        attempts += 1;
        if attempts > calls * 50 {
            bail!("found only {} usable {} calls", out.len(), route.name());
        }
        let (user, organization) = users[rng.below(users.len() as u64) as usize];
        let tool = &registry.tools()[rng.below(registry.tools().len() as u64) as usize];
        let token = keys.issue(user, now)?.0;
        let user_text = user.to_string();
        let call = match route {
            Route::Progress => Call {
                method: "GET",
                path: "/progress".into(),
                headers: bearer(token),
                body: Body::None,
                statements: vec![progress_statement(user)],
            },
            Route::Resolve => {
                let fields: Vec<&str> =
                    tool.dependencies.iter().map(|d| d.field.as_str()).collect();
                Call {
                    method: "GET",
                    path: format!("/tools/{}/dependencies", tool.slug),
                    headers: bearer(token),
                    body: Body::None,
                    statements: vec![Statement {
                        sql: dependencies::sql::resolve(registry, tool)
                            .as_str()
                            .to_owned(),
                        binds: vec![
                            (Bind::Value(user_text.clone()), "uuid"),
                            (Bind::Value(user_text), "uuid"),
                            (Bind::Value(tool.slug.clone()), "text"),
                            (Bind::Value(pg_array(&fields)), "text[]"),
                            (Bind::Value("bench".into()), "text"),
                        ],
                    }],
                }
            }
            Route::Submit => {
                let status: Option<String> = db::query_scalar(
                    "select status::text from shared.user_progress where user_id = $1 and tool_slug = $2",
                )
                .bind(user)
                .bind(&tool.slug)
                .fetch_optional(pool)
                .await
                .context("reading progress")?;
                // The generated data holds a submission exactly for these.
                if !matches!(status.as_deref(), Some("in_progress" | "completed")) {
                    continue;
                }
                submit_call(registry, tool, user, organization, token, &mut rng)
            }
            Route::Webhook | Route::Launch => unreachable!("sampled by sync_calls"),
        };
        out.push(call);
    }
    Ok(out)
}
