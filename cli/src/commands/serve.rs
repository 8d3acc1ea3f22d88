//! `fasttrack serve`: every route on 127.0.0.1 through the handlers the Lambdas
//! run, after a banner with the users' tokens and requests to try.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};

use crate::database::on_this_machine;
use crate::{local_server, openapi};
use shared::app::App;
use shared::foundation::config::Environment;
use shared::foundation::config::Source;
use shared::foundation::db;
use shared::http::cors::Cors;

pub async fn run(port: u16, cors_allowed_origins: Vec<String>) -> Result<()> {
    let app = App::from_env(None).await?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("serving on {addr}"))?;
    print_banner(&app, port).await?;
    let local = local_server::Local {
        app,
        cors: Cors::new(cors_allowed_origins),
        openapi: openapi::json()?.into(),
    };
    local_server::serve(local, listener)
        .await
        .with_context(|| format!("serving on {addr}"))
}

/// What `make run` shows before serving: who the demo users are, their tokens,
/// and a few requests to try.
async fn print_banner(app: &App, port: u16) -> Result<()> {
    let base = format!("http://127.0.0.1:{port}");
    let users: Vec<(uuid::Uuid, String, String)> = app
        .context
        .pool
        .read(async |conn| {
            db::query_as(
                "select id, email::text, role::text from shared.users order by role, email limit 12",
            )
            .fetch_all(conn)
            .await
        })
        .await
        .context("reading users")?;
    println!("\nFast Track API on {base}  (Ctrl-C stops it)\n");
    let local = Environment
        .get("DATABASE_URL")
        .is_some_and(|url| on_this_machine(&url));
    if !local {
        println!("  The database is not on this machine: no tokens are printed for its users.\n");
        return Ok(());
    }
    if users.len() == 12 {
        println!("  (the first 12 users; `make token EMAIL=...` makes a token for any other)");
    }
    let mut first_user_token = None;
    for (id, email, role) in &users {
        let (token, _) = app.issue_token(*id)?;
        println!("  {role:<5} {email:<34} {id}\n        token: {token}");
        if role == "user" && first_user_token.is_none() {
            first_user_token = Some(token);
        }
    }
    if let Some(token) = first_user_token {
        println!("\nTry:");
        println!("  curl -s {base}/health");
        println!("  curl -s -H 'Authorization: Bearer {token}' {base}/progress");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' {base}/tools/know-thyself/dependencies"
        );
        println!(
            "  curl -s -X PUT -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n       -d '{{\"data\": {{\"dream\": \"A bakery\"}}, \"status\": \"draft\"}}' {base}/tools/know-thyself/submission"
        );
    }
    let coach: Option<(uuid::Uuid, uuid::Uuid)> = app
        .context
        .pool
        .read(async |conn| {
            db::query_as(
                "select id, organization_id from shared.users
                 where lms_user_id = $1 and organization_id is not null",
            )
            .bind(shared::demo::ROSTER_GURU.lms_user_id)
            .fetch_optional(conn)
            .await
        })
        .await
        .context("reading the roster demo's guru")?;
    if let Some((guru, organization)) = coach {
        let (token, _) = app.issue_token(guru)?;
        let roster = format!("{base}/organizations/{organization}/members");
        println!(
            "\nStaff reports, as {} (guru of Riverside Accelerator, {} members):",
            shared::demo::ROSTER_GURU.email,
            shared::demo::ROSTER_MEMBERS
        );
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' '{roster}?sort=progress&order=desc&limit=10'"
        );
        println!("  curl -s -H 'Authorization: Bearer {token}' '{roster}?stuck_days=14'");
        println!("  curl -s -H 'Authorization: Bearer {token}' -H 'Accept: text/csv' {roster}");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' {base}/organizations/{organization}/funnel"
        );
    }
    println!();
    Ok(())
}
