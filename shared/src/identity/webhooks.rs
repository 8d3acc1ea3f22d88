//! LearnWorlds webhooks: which deliveries carry a user, where the user sits in
//! the payload, and telling a retry from a new delivery.
//!
//! LearnWorlds sends no event id and retries failed deliveries, so a delivery is
//! identified by the SHA-256 of its raw body. A retry (for a user event: the
//! user's last body again) has no second effect; a user set back to an earlier
//! state arrives as an earlier body, and is applied.

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::users::{self, LmsUser, Membership, OrganizationTag};
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::registry::Registry;

/// Where an event type carries its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAt {
    DataUser,
    /// `data.user.user` (subscriptionPaymentPlanBought).
    DataUserUser,
    /// Flat in `data` (userTagAdded / userTagDeleted).
    Data,
}

fn user_location(event_type: &str) -> Option<UserAt> {
    match event_type {
        "userUpdated"
        | "enrolledFreeCourse"
        | "productBought"
        | "courseCompleted"
        | "userUnenrolledFromProduct" => Some(UserAt::DataUser),
        "subscriptionPaymentPlanBought" => Some(UserAt::DataUserUser),
        "userTagAdded" | "userTagDeleted" => Some(UserAt::Data),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: Option<String>,
    pub trigger: Option<String>,
    /// `None` for events the service does not act on.
    pub user: Option<LmsUser>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_webhook", message)
}

/// An optional envelope or user field: absent or null is `None`, a string is
/// itself, anything else is a 422 naming the field.
fn string<'a>(object: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, ApiError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("`{name}` must be a string"))),
    }
}

/// A name part: trimmed, blank is none; `\u0000` anywhere is a 422.
fn name_part(user: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = string(user, name)? else {
        return Ok(None);
    };
    if value.contains('\0') {
        return Err(invalid(format!("`{name}` may not contain \\u0000")));
    }
    Ok(Some(value.trim().to_owned()).filter(|v| !v.is_empty()))
}

/// Reads an envelope `{"version", "type", "trigger", "school_id", "data"}`:
/// unknown fields are ignored and each known one may be absent, but a known
/// field of the wrong type is a 422 (openapi.yaml's `WebhookEnvelope`).
pub fn interpret(payload: &Value) -> Result<Event, ApiError> {
    let Value::Object(envelope) = payload else {
        return Err(invalid("the webhook body must be a JSON object"));
    };
    let event_type = string(envelope, "type")?;
    let trigger = string(envelope, "trigger")?;
    string(envelope, "school_id")?;
    match envelope.get("version") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v.fract() == 0.0) => {}
        Some(_) => return Err(invalid("`version` must be an integer")),
    }
    let data = match envelope.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::Object(data)) => Some(data),
        Some(_) => return Err(invalid("`data` must be an object")),
    };
    let (event_type, trigger) = (event_type.map(str::to_owned), trigger.map(str::to_owned));
    let Some(location) = event_type.as_deref().and_then(user_location) else {
        return Ok(Event {
            event_type,
            trigger,
            user: None,
        });
    };
    let user = match location {
        UserAt::DataUser => data.and_then(|d| d.get("user")).and_then(Value::as_object),
        UserAt::DataUserUser => data
            .and_then(|d| d.get("user"))
            .and_then(Value::as_object)
            .and_then(|u| u.get("user"))
            .and_then(Value::as_object),
        UserAt::Data => data,
    };
    let Some(user) = user else {
        return Err(invalid(format!(
            "a {} event must carry a user",
            event_type.unwrap_or_default()
        )));
    };
    // LearnWorlds ids are strings; a number is taken as its decimal text.
    let lms_user_id = match user.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        None | Some(Value::Null) => return Err(invalid("the webhook's user has no id")),
        Some(_) => return Err(invalid("the webhook's user id must be a string")),
    };
    let email = string(user, "email")?
        .ok_or_else(|| invalid("the webhook's user has no email"))?
        .to_owned();
    let first = name_part(user, "first_name")?;
    let last = name_part(user, "last_name")?;
    let username = name_part(user, "username")?;
    let full_name = [first, last]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let full_name = Some(full_name)
        .filter(|n| !n.is_empty())
        .or(username)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
    // A display name: longer than the column, it is cut, not refused.
    let full_name = truncate(&full_name, 255);
    // A tag event may list only the tags it added or removed: it can put the
    // user in an organization, never take them out of one. Other events carry
    // the whole user, whose tags are the whole list.
    let tags = user
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| tags.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    let company = user
        .get("fields")
        .and_then(|f| f.get("company"))
        .and_then(Value::as_str);
    let organization = match (event_type.as_deref(), tags) {
        (Some("userTagDeleted"), _) | (_, None) => Membership::Unchanged,
        (Some("userTagAdded"), Some(tags)) => {
            OrganizationTag::from_tags(tags, company).map_or(Membership::Unchanged, Membership::In)
        }
        (_, Some(tags)) => Membership::from_tags(tags, company),
    };
    Ok(Event {
        event_type,
        trigger,
        user: Some(LmsUser {
            lms_user_id,
            email,
            full_name,
            organization,
        }),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// `synced`, `ignored`, or `duplicate` for a retry of a delivery already
    /// received (for a user event: the user's last one).
    pub outcome: &'static str,
    pub event_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
}

/// Records a delivery of a user event; no row when its body is the last one
/// applied for that user (a retry of it). LearnWorlds sends no event id, so
/// the body is the delivery's identity, and only the user's last one counts: a
/// user set back to an earlier state arrives as an earlier body, and applies
/// (its row in `webhook_events`, one per distinct body, then takes the new
/// receipt time). The upsert locks the user's row, so two copies of one
/// delivery arriving at once apply once. A later delivery in `webhook_events`
/// means the last-delivery row is stale (code before migration 0005, after a
/// rollback, does not keep it), and the body applies. Binds: $1 the body's
/// SHA-256, $2 event type, $3 trigger, $4 LearnWorlds id, $5 outcome, $6 payload.
pub const RECORD_USER_DELIVERY_SQL: &str = "with last as (
         insert into shared.webhook_last_deliveries as l (lms_user_id, body_sha256) values ($4, $1)
         on conflict (lms_user_id) do update
             set body_sha256 = excluded.body_sha256, received_at = excluded.received_at
             where l.body_sha256 <> excluded.body_sha256
                or exists (select from shared.webhook_events e
                           where e.lms_user_id = l.lms_user_id and e.received_at > l.received_at)
         returning 1
     )
     insert into shared.webhook_events as e (body_sha256, event_type, trigger, lms_user_id, outcome, payload)
     select $1, $2, $3, $4, $5, $6 where exists (select from last)
     on conflict (body_sha256) do update set received_at = excluded.received_at
     returning e.id";

/// Records a delivery of an event without a user, once per body; no row for a
/// body seen before. Binds as [`RECORD_USER_DELIVERY_SQL`] ($4 null).
pub const RECORD_OTHER_DELIVERY_SQL: &str = "insert into shared.webhook_events (body_sha256, event_type, trigger, lms_user_id, outcome, payload)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (body_sha256) do nothing
     returning id";

/// Records the delivery and, for events that carry a user, syncs the user, in
/// one transaction: on any error (a user the sync refuses among them) nothing
/// is written, so LearnWorlds' retry can succeed later.
pub async fn receive(
    pool: &db::Pool,
    registry: &Registry,
    body: &[u8],
    payload: &Value,
) -> Result<Receipt, ApiError> {
    let event = interpret(payload)?;
    // Before anything is recorded: the delivery's record holds the id too.
    if let Some(user) = &event.user {
        user.validate()?;
    }
    let digest = Sha256::digest(body).to_vec();
    let outcome = if event.user.is_some() {
        "synced"
    } else {
        "ignored"
    };
    let receipt = pool
        .transaction(async |tx| {
            let record = match event.user {
                Some(_) => RECORD_USER_DELIVERY_SQL,
                None => RECORD_OTHER_DELIVERY_SQL,
            };
            let event_id: Option<Uuid> = db::query_scalar(record)
                .bind(&digest)
                .bind(event.event_type.as_deref().map(|s| truncate(s, 255)))
                .bind(event.trigger.as_deref().map(|s| truncate(s, 255)))
                .bind(event.user.as_ref().map(|u| u.lms_user_id.as_str()))
                .bind(outcome)
                .bind(payload)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(event_id) = event_id else {
                return Ok::<_, ApiError>(Receipt {
                    outcome: "duplicate",
                    event_id: None,
                    user_id: None,
                });
            };
            let user_id = match &event.user {
                Some(user) => Some(users::sync(tx, registry, user, false).await?.id),
                None => None,
            };
            Ok(Receipt {
                outcome,
                event_id: Some(event_id),
                user_id,
            })
        })
        .await?;
    // A duplicate recorded nothing.
    if receipt.event_id.is_some() {
        tracing::info!(event_type = ?event.event_type, outcome, user_id = ?receipt.user_id, "webhook received");
    }
    Ok(receipt)
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "id": "64a0f0000000000000000001", "email": "ana@example.test", "username": "ana",
            "first_name": "Ana", "last_name": "Lopes", "created": 1_700_000_000.5,
            "tags": ["vip", "org:acme"], "fields": {"company": "Acme Ltd", "cf_size": "10"},
            "role": {"level": "admin", "name": "Admin"}, "is_admin": true
        })
    }

    #[test]
    fn each_user_event_finds_its_user_where_learnworlds_puts_it() {
        let cases = [
            json!({"version": 2, "type": "userUpdated", "trigger": "user_updated", "data": {"user": user()}}),
            json!({"type": "enrolledFreeCourse", "data": {"user": user(), "course": {"id": "c"}}}),
            json!({"type": "productBought", "data": {"user": user(), "payment": {"product": {}}}}),
            json!({"type": "courseCompleted", "data": {"user": user(), "completed_at": "2026-01-01T00:00:00Z"}}),
            json!({"type": "userUnenrolledFromProduct", "data": {"user": user()}}),
            json!({"type": "subscriptionPaymentPlanBought", "data": {"user": {"user": user()}}}),
            json!({"type": "userTagAdded", "trigger": "user_tag_added", "data": user()}),
        ];
        for payload in cases {
            let event = interpret(&payload).unwrap();
            let user = event.user.unwrap_or_else(|| panic!("no user in {payload}"));
            assert_eq!(user.lms_user_id, "64a0f0000000000000000001");
            assert_eq!(user.email, "ana@example.test");
            assert_eq!(user.full_name, "Ana Lopes");
            let Membership::In(organization) = user.organization else {
                panic!("no organization in {payload}")
            };
            assert_eq!(organization.name, "Acme Ltd");
        }
    }

    #[test]
    fn a_tag_deletion_never_moves_the_user_between_organizations() {
        let event = interpret(&json!({"type": "userTagDeleted", "data": user()})).unwrap();
        assert_eq!(event.user.unwrap().organization, Membership::Unchanged);
    }

    #[test]
    fn only_a_whole_tag_list_without_an_org_tag_takes_the_user_out_of_their_organization() {
        let membership = |payload: Value| interpret(&payload).unwrap().user.unwrap().organization;
        let untagged =
            json!({"id": "64a0f0000000000000000001", "email": "ana@example.test", "tags": ["vip"]});
        let no_tags = json!({"id": "64a0f0000000000000000001", "email": "ana@example.test"});
        assert_eq!(
            membership(json!({"type": "userUpdated", "data": {"user": untagged}})),
            Membership::NoOrganization
        );
        assert_eq!(
            membership(json!({"type": "productBought", "data": {"user": untagged}})),
            Membership::NoOrganization
        );
        // Without `tags` the event says nothing; a tag event lists only its tags.
        assert_eq!(
            membership(json!({"type": "userUpdated", "data": {"user": no_tags}})),
            Membership::Unchanged
        );
        assert_eq!(
            membership(json!({"type": "userTagAdded", "data": untagged})),
            Membership::Unchanged
        );
    }

    #[test]
    fn events_without_a_user_are_ignored_not_rejected() {
        for payload in [
            json!({"type": "leadCreated", "data": {}}),
            json!({"type": "awardedCertificate"}),
            json!({}),
        ] {
            assert_eq!(interpret(&payload).unwrap().user, None);
        }
    }

    #[test]
    fn a_user_event_without_id_or_email_is_422() {
        for payload in [
            json!({"type": "userUpdated", "data": {}}),
            json!({"type": "userUpdated", "data": {"user": {"email": "a@b.test"}}}),
            json!({"type": "userUpdated", "data": {"user": {"id": "x"}}}),
            json!([1]),
        ] {
            assert_eq!(
                interpret(&payload).unwrap_err().status().as_u16(),
                422,
                "{payload}"
            );
        }
    }

    #[test]
    fn names_fall_back_to_username_then_email() {
        let payload = json!({"type": "userUpdated", "data": {"user": {"id": 7, "email": "zoe@example.test", "username": "zoe_z"}}});
        let user = interpret(&payload).unwrap().user.unwrap();
        assert_eq!(
            (user.lms_user_id.as_str(), user.full_name.as_str()),
            ("7", "zoe_z")
        );
        let payload = json!({"type": "userUpdated", "data": {"user": {"id": "8", "email": "max@example.test"}}});
        assert_eq!(interpret(&payload).unwrap().user.unwrap().full_name, "max");
    }
}
