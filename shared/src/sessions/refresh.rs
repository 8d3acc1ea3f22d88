//! Refresh tokens: what keeps a session alive past its short bearer token.
//!
//! A launch starts a *family* (one session) and gives it an opaque refresh
//! token: 32 random bytes, base64url. Only the token's SHA-256 is stored
//! (`shared.refresh_tokens`), so the database never holds a working token.
//! `POST /sessions/refresh` uses the family's current token up and answers a
//! new bearer token and the family's next refresh token (rotation, RFC 9700
//! 4.14.2). A token used a second time means two holders: the whole family is
//! revoked, and the newer token with it. A family ends at its absolute
//! lifetime (`REFRESH_TOKEN_TTL_SECONDS` after the launch), when unused for
//! its idle lifetime (`REFRESH_TOKEN_IDLE_SECONDS`), at a logout, and when the
//! person's role or organization changes or their erasure is requested
//! (migration 0020's trigger, and the `version` check here). See
//! docs/sessions.md.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::foundation::db;
use crate::foundation::error::ApiError;

/// A refresh token's length: 32 bytes (256 bits) in base64url, unpadded.
pub const TOKEN_LEN: usize = 43;

/// A fresh refresh token.
pub fn generate() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Internal("the system's random source failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a token: its SHA-256.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` is shaped as this service makes them: 43 base64url
/// characters. Anything else is refused before the database is asked.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The body of `POST /sessions/refresh` and `POST /sessions/logout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    pub refresh_token: String,
}

impl RefreshBody {
    pub fn from_json(body: serde_json::Value) -> Result<Self, ApiError> {
        // Serde would read a struct from a list too (`["..."]`).
        if !body.is_object() {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "the body must be {\"refresh_token\": \"...\"}",
            ));
        }
        let body: Self = serde_json::from_value(body).map_err(|e| {
            ApiError::unprocessable(
                "invalid_body",
                format!("the body must be {{\"refresh_token\": \"...\"}}: {e}"),
            )
        })?;
        if !well_formed(&body.refresh_token) {
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!(
                    "refresh_token must be the {TOKEN_LEN} base64url characters a session was given"
                ),
            ));
        }
        Ok(body)
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// Starts a session of `user_id` (an open account, as the launch found it):
/// its family and first refresh token. Returns the token and when the session
/// ends at the latest (Unix seconds).
pub async fn start(
    conn: &mut PgConnection,
    user_id: Uuid,
    lifetime: Duration,
) -> Result<(String, i64), ApiError> {
    let token = generate()?;
    let expires_at: Option<i64> = db::query_scalar(START_SQL)
        .bind(user_id)
        .bind(secs(lifetime))
        .bind(hash(&token))
        .fetch_optional(&mut *conn)
        .await?;
    let expires_at =
        expires_at.ok_or_else(|| ApiError::Internal("the session's user is gone".into()))?;
    Ok((token, expires_at))
}

/// Binds: $1 user, $2 absolute lifetime (seconds), $3 the token's hash.
const START_SQL: &str = "with family as (
        insert into shared.refresh_families (user_id, user_version, expires_at)
        select u.id, u.version, clock_timestamp() + make_interval(secs => $2::bigint)
        from shared.users u where u.id = $1 and u.erasure_requested_at is null
        returning id, expires_at
    ), token as (
        insert into shared.refresh_tokens (token_sha256, family_id)
        select $3, id from family
        returning 1
    )
    select extract(epoch from expires_at)::bigint from family where exists (select 1 from token)";

/// A family, as a refresh finds it through one of its tokens.
#[derive(Debug, sqlx::FromRow)]
struct Found {
    family_id: Uuid,
    user_id: Uuid,
    used: bool,
    revoked: bool,
    expired: bool,
    idle: bool,
    /// The account is open (no erasure requested).
    open: bool,
    /// Role and organization are as when the session began.
    unchanged: bool,
    expires_at: i64,
}

/// Binds: $1 the token's hash, $2 the idle lifetime (seconds). Locks the
/// token and its family: two refreshes with one token are served one after
/// the other, and the second finds it used.
const FIND_SQL: &str = "select f.id as family_id, f.user_id, t.used_at is not null as used,
        f.revoked_at is not null as revoked,
        f.expires_at <= clock_timestamp() as expired,
        f.last_used_at + make_interval(secs => $2::bigint) <= clock_timestamp() as idle,
        coalesce(u.erasure_requested_at is null, false) as open,
        coalesce(u.version = f.user_version, false) as unchanged,
        extract(epoch from f.expires_at)::bigint as expires_at
    from shared.refresh_tokens t
    join shared.refresh_families f on f.id = t.family_id
    left join shared.users u on u.id = f.user_id
    where t.token_sha256 = $1
    for update of t, f";

/// Binds: $1 family, $2 reason.
const REVOKE_SQL: &str = "update shared.refresh_families
    set revoked_at = clock_timestamp(), revoked_reason = $2
    where id = $1 and revoked_at is null";

/// Binds: $1 the used token's hash, $2 family, $3 the new token's hash.
const ROTATE_SQL: &str = "with used as (
        update shared.refresh_tokens set used_at = clock_timestamp()
        where token_sha256 = $1 and used_at is null
        returning 1
    ), family as (
        update shared.refresh_families set last_used_at = clock_timestamp()
        where id = $2 and exists (select 1 from used)
        returning id
    )
    insert into shared.refresh_tokens (token_sha256, family_id)
    select $3, id from family
    returning true";

/// A refresh that succeeded: whose session, its next token, and when it ends.
#[derive(Debug)]
pub struct Rotated {
    pub user_id: Uuid,
    pub refresh_token: String,
    pub expires_at: i64,
}

/// Why a refresh was refused; the family is revoked by then where it says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Unknown,
    Revoked,
    Reused,
    Expired,
    Idle,
    Closed,
    Changed,
}

impl Refusal {
    /// The family's `revoked_reason`, when the refusal revokes it.
    fn revokes(self) -> Option<&'static str> {
        match self {
            Refusal::Unknown | Refusal::Revoked => None,
            Refusal::Reused => Some("reuse"),
            Refusal::Expired => Some("expired"),
            Refusal::Idle => Some("idle"),
            Refusal::Closed => Some("account_closed"),
            Refusal::Changed => Some("role_changed"),
        }
    }

    fn error(self) -> ApiError {
        ApiError::InvalidRefreshToken(match self {
            Refusal::Unknown => {
                "the refresh token is invalid: open the tool from LearnWorlds again"
            }
            Refusal::Revoked => "this session has ended: open the tool from LearnWorlds again",
            Refusal::Reused => {
                "this refresh token was already used, so the session is ended for safety: open the tool from LearnWorlds again"
            }
            Refusal::Expired => {
                "this session has reached its longest lifetime: open the tool from LearnWorlds again"
            }
            Refusal::Idle => {
                "this session was unused too long: open the tool from LearnWorlds again"
            }
            Refusal::Closed => "this account is closed",
            Refusal::Changed => {
                "your role or organization changed since this session began: open the tool from LearnWorlds again"
            }
        })
    }
}

/// Uses up `token` and gives its family the next one, in `conn`'s
/// transaction. A refusal that revokes the family is written too, and the
/// caller commits it: the `Ok(Err(..))` case.
pub async fn rotate(
    conn: &mut PgConnection,
    token: &str,
    idle: Duration,
) -> Result<Result<Rotated, ApiError>, ApiError> {
    let used = hash(token);
    let found: Option<Found> = db::query_as(FIND_SQL)
        .bind(&used)
        .bind(secs(idle))
        .fetch_optional(&mut *conn)
        .await?;
    let Some(found) = found else {
        return Ok(Err(Refusal::Unknown.error()));
    };
    // In this order: a revoked family says so whatever else is true of it; a
    // reuse is told as such, even past the session's end.
    let refusal = if found.revoked {
        Some(Refusal::Revoked)
    } else if found.used {
        Some(Refusal::Reused)
    } else if !found.open {
        Some(Refusal::Closed)
    } else if !found.unchanged {
        Some(Refusal::Changed)
    } else if found.expired {
        Some(Refusal::Expired)
    } else if found.idle {
        Some(Refusal::Idle)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        if let Some(reason) = refusal.revokes() {
            db::query(REVOKE_SQL)
                .bind(found.family_id)
                .bind(reason)
                .execute(&mut *conn)
                .await?;
        }
        return Ok(Err(refusal.error()));
    }
    let next = generate()?;
    let rotated: Option<bool> = db::query_scalar(ROTATE_SQL)
        .bind(&used)
        .bind(found.family_id)
        .bind(hash(&next))
        .fetch_optional(&mut *conn)
        .await?;
    if rotated.is_none() {
        return Err(ApiError::Internal(
            "a locked refresh token could not be rotated".into(),
        ));
    }
    Ok(Ok(Rotated {
        user_id: found.user_id,
        refresh_token: next,
        expires_at: found.expires_at,
    }))
}

/// Ends the session `token` belongs to (any of its tokens, used or not).
/// Returns whether a session was ended; an unknown token ends none.
pub async fn revoke(conn: &mut PgConnection, token: &str) -> Result<bool, ApiError> {
    let revoked: Option<bool> = db::query_scalar(
        "update shared.refresh_families f
         set revoked_at = clock_timestamp(), revoked_reason = 'logout'
         from shared.refresh_tokens t
         where t.token_sha256 = $1 and f.id = t.family_id and f.revoked_at is null
         returning true",
    )
    .bind(hash(token))
    .fetch_optional(&mut *conn)
    .await?;
    Ok(revoked.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_is_256_random_bits_in_base64url_and_well_formed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(well_formed(&a));
        assert_eq!(hash(&a).len(), 32);
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn a_body_is_exactly_one_well_formed_refresh_token() {
        let good = generate().unwrap();
        assert!(RefreshBody::from_json(serde_json::json!({ "refresh_token": good })).is_ok());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"refresh_token": null}),
            serde_json::json!({"refresh_token": 7}),
            serde_json::json!({"refresh_token": ""}),
            serde_json::json!({"refresh_token": "a".repeat(42)}),
            serde_json::json!({"refresh_token": "a".repeat(44)}),
            serde_json::json!({"refresh_token": format!("{}=", "a".repeat(42))}),
            serde_json::json!({"refresh_token": good, "extra": 1}),
            serde_json::json!([good]),
        ] {
            let error = RefreshBody::from_json(bad.clone()).unwrap_err();
            assert_eq!(
                (error.status().as_u16(), error.code()),
                (422, "invalid_body"),
                "{bad}"
            );
        }
    }
}
