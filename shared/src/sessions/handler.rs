//! `POST /sessions`: a signed launch in, the user synced, a bearer token, a
//! refresh token and their progress out. `POST /sessions/refresh`: a refresh
//! token in, a new bearer token and the next refresh token out.
//! `POST /sessions/logout`: the session ended. See docs/sessions.md.

use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::json;

use super::launch::{self, CLAIM_LAUNCH_SQL, Launch};
use super::refresh::{self, RefreshBody};
use super::tokens::TokenKeys;
use crate::access::Reading;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::http::{Context, Request, Response, response};
use crate::identity::tombstones::{ErasureKeys, Standing, standing};
use crate::identity::users::{self, LmsUser, Membership};
use crate::progress;

pub async fn create(
    ctx: &Context,
    keys: &TokenKeys,
    erasure: &ErasureKeys,
    request: &Request<'_>,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let launch = Launch::from_json(request.json_body()?)?;
    let now = unix_now();
    launch::verify_launch(
        ctx.settings.launch_secret.as_ref(),
        &launch,
        now as i64,
        ctx.settings.launch_max_age,
    )?;
    let user = LmsUser {
        lms_user_id: launch.lms_user_id.clone(),
        email: launch.email.clone(),
        full_name: launch.name.clone(),
        organization: Membership::Unchanged,
    };
    // Before the launch is claimed: its record holds the id too.
    user.validate()?;
    // The answer is made inside the transaction that uses up the launch: if
    // anything fails before the commit, the launch is still unused, and the
    // 503's retry can succeed instead of meeting "already used".
    let (user, token, expires_at, (refresh_token, refresh_expires_at), progress) = ctx
        .pool
        .transaction(async |tx| {
            match standing(tx, erasure, &user.lms_user_id, &user.email).await? {
                Standing::Open => {}
                Standing::Erased => {
                    return Err(ApiError::Forbidden("this account was erased"));
                }
                Standing::ErasurePending => {
                    return Err(ApiError::Forbidden(
                        "this account is being erased; an admin can cancel the request",
                    ));
                }
            }
            let first_use: bool = db::query_scalar(CLAIM_LAUNCH_SQL)
                .bind(launch.signature.to_ascii_lowercase())
                .bind(&launch.lms_user_id)
                .fetch_optional(&mut *tx)
                .await?
                .unwrap_or(false);
            if !first_use {
                return Err(ApiError::InvalidSignature(
                    "this launch was already used; open the tool from LearnWorlds again",
                ));
            }
            let user = users::sync(tx, ctx.registry, &user, true).await?;
            let (token, expires_at) = keys.issue(user.id, now)?;
            let session = refresh::start(tx, user.id, ctx.settings.refresh_ttl).await?;
            let progress = progress::for_user(tx, ctx.registry, Reading::own(user.id)).await?;
            Ok((user, token, expires_at, session, progress))
        })
        .await?;
    request.log().user_id(Some(user.id));
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "token": token,
            "token_type": "Bearer",
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "refresh_token_expires_at": refresh_expires_at,
            "user": user,
            "progress": progress.summary,
        }),
    ))
}

/// `POST /sessions/refresh`: the body's refresh token used up, a new bearer
/// token and the session's next refresh token answered. A refusal that ends
/// the session (a reused token, a lapsed or changed one) is committed before
/// the 401 goes out.
pub async fn refresh(
    ctx: &Context,
    keys: &TokenKeys,
    request: &Request<'_>,
) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = RefreshBody::from_json(request.json_body()?)?;
    let now = unix_now();
    let outcome = ctx
        .pool
        .transaction(async |tx| {
            let rotated =
                match refresh::rotate(tx, &body.refresh_token, ctx.settings.refresh_idle).await? {
                    Ok(rotated) => rotated,
                    Err(refused) => return Ok(Err(refused)),
                };
            let (token, expires_at) = keys.issue(rotated.user_id, now)?;
            Ok::<_, ApiError>(Ok((rotated, token, expires_at)))
        })
        .await?;
    let (rotated, token, expires_at) = outcome?;
    request.log().user_id(Some(rotated.user_id));
    Ok(response::json(
        StatusCode::OK,
        &json!({
            "token": token,
            "token_type": "Bearer",
            "expires_at": expires_at,
            "refresh_token": rotated.refresh_token,
            "refresh_token_expires_at": rotated.expires_at,
        }),
    ))
}

/// `POST /sessions/logout`: ends the session the body's refresh token belongs
/// to. 204 whether or not it was a live session's (RFC 7009, 2.2): a logout
/// tells nothing about a token.
pub async fn logout(ctx: &Context, request: &Request<'_>) -> Result<Response, ApiError> {
    request.allow_query(&[])?;
    let body = RefreshBody::from_json(request.json_body()?)?;
    ctx.pool
        .transaction(async |tx| refresh::revoke(tx, &body.refresh_token).await)
        .await?;
    Ok(response::empty(StatusCode::NO_CONTENT))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
