//! The first admin of a fresh deployment (`fasttrack bootstrap-admin --email`):
//! an operator promotes a person who has signed in once. It refuses when an
//! admin exists (then an admin sets roles: `PATCH /users/{id}`). Recorded in
//! the audit log as `bootstrap.admin`, with no actor and the role `operator`.

use serde_json::json;
use uuid::Uuid;

use crate::audit::Action;
use crate::foundation::db;

/// Why a bootstrap did nothing.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("an admin already exists ({0}): an admin sets roles with PATCH /users/{{id}}")]
    AdminExists(String),
    #[error(
        "no user has the email {0}: they sign in once (LearnWorlds creates them here), then run this again"
    )]
    NoSuchUser(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Api(#[from] crate::foundation::error::ApiError),
}

/// Makes the user with `email` (case-insensitively) the first admin, in one
/// transaction that holds the admins' lock (`shared.set_role`'s), so that
/// two bootstraps cannot both pass. Returns their id.
pub async fn bootstrap_admin(pool: &db::Pool, email: &str) -> Result<Uuid, Refused> {
    pool.transaction(async |tx| {
        // Every user row may become the admin: lock the table's role changes
        // for the transaction (SHARE ROW EXCLUSIVE conflicts with itself).
        db::query("lock table shared.users in share row exclusive mode")
            .execute(&mut *tx)
            .await?;
        let admin: Option<String> = db::query_scalar(
            "select email::text from shared.users where role = 'admin' order by created_at limit 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(admin) = admin {
            return Err(Refused::AdminExists(admin));
        }
        let user: Option<(Uuid, String, Option<Uuid>)> = db::query_as(
            "select id, role::text, organization_id from shared.users where lower(email) = lower($1)",
        )
        .bind(email.trim())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((id, role, organization)) = user else {
            return Err(Refused::NoSuchUser(email.trim().to_owned()));
        };
        db::query(
            "update shared.users set role = 'admin', role_set_by = null, role_set_at = clock_timestamp()
             where id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // No actor: the operator, with the database owner's login.
        db::query(
            "insert into shared.audit_log (actor_id, actor_role, action, subjects, organization_id, reason, before, after)
             values (null, 'operator', $1, array[$2::uuid], $3, $4, $5, $6)",
        )
        .bind(Action::BootstrapAdmin.as_str())
        .bind(id)
        .bind(organization)
        .bind("fasttrack bootstrap-admin: the deployment's first admin")
        .bind(json!({ "role": role }))
        .bind(json!({ "role": "admin" }))
        .execute(&mut *tx)
        .await?;
        Ok(id)
    })
    .await
}
