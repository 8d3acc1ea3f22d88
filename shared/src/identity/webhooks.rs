//! LearnWorlds webhooks: which deliveries carry a user, where the user sits in
//! the payload, what is applied, and telling a retry from a new delivery.
//!
//! **A delivery is a notice, not a fact.** In `shared-secret` mode the
//! signature is a constant that anyone who saw one delivery can put on any
//! body, and in either mode an old delivery can be sent again. So a delivery
//! only says which user to look at: with LearnWorlds' API configured, the user
//! is then read from it ([`LearnWorldsApi`]) and that answer (tags, and so the
//! organization; email and name) is what is applied, whatever the body said.
//! Without the API, a delivery may update the user's email and name but never
//! their organization (the receipt says `"membership": "unconfirmed"`).
//!
//! **Which events.** Every documented event that carries a whole user object
//! (with `id` and `email`) syncs that user: besides the obvious ones
//! (`userUpdated`, the tag events, enrolments, purchases, completions) also
//! `awardedCertificate`, `learningProgramCompleted`, the subscription events
//! (`subscriptionPaymentPlanCanceled`, `subscriptionTrialStarted`,
//! `subscriptionTrialWillEnd`, `subscriptionUpdated`) and `previewedFree`.
//! Since a delivery is only a notice to look the user up, any of them is as
//! good a reason as `userUpdated` to refresh them, and each makes a missed or
//! failed `userUpdated` matter less. `leadCreated` (a lead has no user id) and
//! `paymentCreated` (where its user sits is not documented) are acknowledged
//! as `ignored`, as is any type not listed in `user_location`.
//!
//! **Order.** An answer from the API is LearnWorlds' state when the question
//! was asked; each sync carries that time ([`users::sync_as_of`]) and one that
//! is older than the state a user already shows changes nothing, so two
//! deliveries confirmed concurrently never leave the older answer in place.
//! Without the API a delivery carries its event's own time where the event
//! type documents one ([`event_time`]: `data.date` of enrolments and
//! subscription events, `data.payment.paid_at` of purchases, `completed_at`
//! of completions, `data.certificate.issued`, `subscriptionUpdated`'s ISO
//! `data.created_at`), never later than its arrival; the others
//! (`userUpdated`, the tag events, `userUnenrolledFromProduct`,
//! `previewedFree`) carry none and apply in the order they arrive. The user's own
//! `created` and `last_login` are never taken for an event's time.
//!
//! **Tolerance.** LearnWorlds retries a delivery that is refused, so a
//! delivery is not refused for what sits in fields the service never reads
//! (`bio`, `billing_info`, `cf_*` sign-up fields, `utms`, ...): the body is
//! parsed leniently ([`crate::http::body::parse_json_lenient`]), a `\u0000`
//! there is kept, and of a key given twice the **last** value counts. The
//! fields that are read and stored stay strict: a key given twice on the way
//! to `type` or the user's `id`, `email`, `first_name`, `last_name` or
//! `username` is a 422 ([`refuse_ambiguous`]), and so is a `\u0000` in them,
//! in `type` or in `trigger`. PostgreSQL's jsonb cannot hold `\u0000`, so the
//! payload recorded in `shared.webhook_events` has each one, in keys and
//! values, replaced with U+FFFD ([`storable`]); the body's SHA-256 (the
//! delivery's identity) is of the bytes received.
//!
//! LearnWorlds sends no event id and retries failed deliveries, so a delivery is
//! identified by the SHA-256 of its raw body. A retry (for a user event: the
//! user's last body again) has no second effect; a user set back to an earlier
//! state arrives as an earlier body, and is applied.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::learnworlds::LearnWorldsApi;
use super::tombstones::{ErasureKeys, Standing, standing};
use super::users::{self, LmsUser, Membership};
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

/// Where each documented event type that carries a user carries them; `None`
/// for the others, which are acknowledged and ignored.
fn user_location(event_type: &str) -> Option<UserAt> {
    match event_type {
        "userUpdated"
        | "enrolledFreeCourse"
        | "productBought"
        | "courseCompleted"
        | "userUnenrolledFromProduct"
        | "awardedCertificate"
        | "learningProgramCompleted"
        | "subscriptionPaymentPlanCanceled"
        | "subscriptionTrialStarted"
        | "subscriptionTrialWillEnd"
        | "previewedFree"
        | "subscriptionUpdated" => Some(UserAt::DataUser),
        "subscriptionPaymentPlanBought" => Some(UserAt::DataUserUser),
        "userTagAdded" | "userTagDeleted" => Some(UserAt::Data),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: Option<String>,
    pub trigger: Option<String>,
    /// The user the delivery names, as it describes them; `None` for events
    /// the service does not act on. Its organization is always
    /// [`Membership::Unchanged`]: tags in a body are a claim nobody signed.
    pub user: Option<LmsUser>,
    /// The event's own time, where its type carries one ([`event_time`]).
    pub occurred_at: Option<DateTime<Utc>>,
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

/// A LearnWorlds user object, as deliveries and LearnWorlds' API both carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserObject<'a> {
    /// Id, email and name; the organization [`Membership::Unchanged`].
    pub profile: LmsUser,
    /// `tags`, when the object has them.
    pub tags: Option<Vec<&'a str>>,
    /// The `company` sign-up field.
    pub company: Option<&'a str>,
}

/// Reads a user object: unknown fields are ignored, and LearnWorlds' own
/// `is_admin` and `role` never grant anything here.
pub fn read_user(user: &Map<String, Value>) -> Result<UserObject<'_>, ApiError> {
    // LearnWorlds ids are strings; a number is taken as its decimal text.
    let lms_user_id = match user.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        None | Some(Value::Null) => return Err(invalid("the user has no id")),
        Some(_) => return Err(invalid("the user id must be a string")),
    };
    let email = string(user, "email")?
        .ok_or_else(|| invalid("the user has no email"))?
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
    let tags = user
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| tags.iter().filter_map(Value::as_str).collect::<Vec<_>>());
    let company = user
        .get("fields")
        .and_then(|f| f.get("company"))
        .and_then(Value::as_str);
    Ok(UserObject {
        profile: LmsUser {
            lms_user_id,
            email,
            full_name,
            organization: Membership::Unchanged,
        },
        tags,
        company,
    })
}

/// A time as LearnWorlds writes one: Unix seconds (a float in most events) or
/// an ISO 8601 string. Anything else is no time.
fn timestamp(value: Option<&Value>) -> Option<DateTime<Utc>> {
    match value? {
        Value::Number(n) => {
            let seconds = n.as_f64().filter(|s| s.is_finite())?;
            DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        }
        Value::String(s) => DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

/// The value at `path` inside `data`.
fn at<'a>(data: Option<&'a Map<String, Value>>, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(data?.get(*first)?, |v, name| v.get(name))
}

/// The event's own time, as LearnWorlds' documented examples carry it (Unix
/// seconds, integer or float, or ISO 8601); `None` for a type that has none.
/// Not capped here: the caller takes no time later than the arrival.
pub fn event_time(event_type: &str, data: Option<&Map<String, Value>>) -> Option<DateTime<Utc>> {
    let time = |path: &[&str]| timestamp(at(data, path));
    match event_type {
        "courseCompleted" | "learningProgramCompleted" => time(&["completed_at"]),
        "enrolledFreeCourse"
        | "subscriptionPaymentPlanCanceled"
        | "subscriptionTrialStarted"
        | "subscriptionTrialWillEnd" => time(&["date"]),
        "productBought" => time(&["payment", "paid_at"]),
        // `paid_at` is the finer of the two (a float; `date` whole seconds).
        "subscriptionPaymentPlanBought" => {
            time(&["payment", "paid_at"]).or_else(|| time(&["date"]))
        }
        "awardedCertificate" => time(&["certificate", "issued"]),
        "subscriptionUpdated" => time(&["created_at"]),
        _ => None,
    }
}

/// The JSON pointer of the user object of an event of this location.
fn user_pointer(location: UserAt) -> &'static str {
    match location {
        UserAt::DataUser => "/data/user",
        UserAt::DataUserUser => "/data/user/user",
        UserAt::Data => "/data",
    }
}

/// A 422 when a key given twice (`duplicate_keys`, JSON pointers from
/// [`crate::http::body::parse_json_lenient`]) is, or holds, a field that is
/// read and stored: `type`, and the user's id, email and names. A key given
/// twice anywhere else is tolerated (its last value counts).
pub fn refuse_ambiguous(payload: &Value, duplicate_keys: &[String]) -> Result<(), ApiError> {
    if duplicate_keys.is_empty() {
        return Ok(());
    }
    let mut read = vec!["/type".to_owned()];
    if let Some(location) = payload
        .get("type")
        .and_then(Value::as_str)
        .and_then(user_location)
    {
        let user = user_pointer(location);
        for field in ["id", "email", "first_name", "last_name", "username"] {
            read.push(format!("{user}/{field}"));
        }
    }
    let holds = |duplicate: &str, field: &str| {
        field == duplicate
            || field
                .strip_prefix(duplicate)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    match duplicate_keys
        .iter()
        .find(|d| read.iter().any(|field| holds(d, field)))
    {
        Some(duplicate) => Err(ApiError::unprocessable(
            "duplicate_key",
            format!("the key at `{duplicate}` is given more than once"),
        )),
        None => Ok(()),
    }
}

/// The payload as it can be stored: jsonb cannot hold `\u0000`, so each one
/// (in a key or a string; only fields never read can still hold one) becomes
/// U+FFFD. Borrowed when there is none.
pub fn storable(payload: &Value) -> std::borrow::Cow<'_, Value> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(object) => object.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    fn replace(value: &Value) -> Value {
        let clean = |s: &str| s.replace('\0', "\u{FFFD}");
        match value {
            Value::String(s) => Value::String(clean(s)),
            Value::Array(items) => Value::Array(items.iter().map(replace).collect()),
            Value::Object(object) => {
                Value::Object(object.iter().map(|(k, v)| (clean(k), replace(v))).collect())
            }
            other => other.clone(),
        }
    }
    if has_nul(payload) {
        std::borrow::Cow::Owned(replace(payload))
    } else {
        std::borrow::Cow::Borrowed(payload)
    }
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
    // Both are stored in their own columns, which cannot hold it.
    for (name, value) in [("type", event_type), ("trigger", trigger)] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(invalid(format!("`{name}` may not contain \\u0000")));
        }
    }
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
            occurred_at: None,
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
    let occurred_at = event_type.as_deref().and_then(|t| event_time(t, data));
    Ok(Event {
        event_type,
        trigger,
        user: Some(read_user(user)?.profile),
        occurred_at,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Receipt {
    /// `synced`, `ignored` (an event without a user, or a user LearnWorlds
    /// does not know), `duplicate` for a retry of a delivery already
    /// received (for a user event: the user's last one), `erased` (a person
    /// erased here, who is not re-created) or `erasure_pending` (a person
    /// whose erasure is requested: nothing of theirs changes).
    pub outcome: &'static str,
    pub event_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    /// For a synced user: `confirmed` (read from LearnWorlds' API, organization
    /// included) or `unconfirmed` (no API configured: email and name from the
    /// delivery, organization unchanged). Otherwise null.
    pub membership: Option<&'static str>,
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

/// Records a delivery that syncs nothing (an event without a user, or about a
/// user LearnWorlds does not know), once per body; no row for a body seen
/// before. Binds as [`RECORD_USER_DELIVERY_SQL`].
pub const RECORD_OTHER_DELIVERY_SQL: &str = "insert into shared.webhook_events (body_sha256, event_type, trigger, lms_user_id, outcome, payload)
     values ($1, $2, $3, $4, $5, $6)
     on conflict (body_sha256) do nothing
     returning id";

/// What a delivery applies: the user, with the time of the state they show.
struct Apply {
    user: LmsUser,
    as_of: Option<DateTime<Utc>>,
    membership: &'static str,
}

/// Reads the delivery, asks LearnWorlds' API about its user (before any
/// transaction: a slow answer holds no lock), then records the delivery and
/// syncs the user in one transaction. An API that cannot answer is a 503 and
/// any error (a user the sync refuses among them) writes nothing, so
/// LearnWorlds' retry can succeed later.
pub async fn receive(
    pool: &db::Pool,
    registry: &Registry,
    api: &LearnWorldsApi,
    erasure: &ErasureKeys,
    body: &[u8],
    payload: &Value,
) -> Result<Receipt, ApiError> {
    let event = interpret(payload)?;
    // Before anything is recorded or asked: the delivery's record holds the
    // id too.
    if let Some(user) = &event.user {
        user.validate()?;
    }
    let apply = match &event.user {
        None => None,
        Some(named) if api.is_configured() => {
            api.current_user(&named.lms_user_id)
                .await?
                .map(|current| Apply {
                    user: current.user,
                    as_of: Some(current.asked_at),
                    membership: "confirmed",
                })
        }
        Some(named) => Some(Apply {
            user: named.clone(),
            as_of: event.occurred_at.map(|t| t.min(Utc::now())),
            membership: "unconfirmed",
        }),
    };
    let digest = Sha256::digest(body).to_vec();
    let outcome = if apply.is_some() { "synced" } else { "ignored" };
    let receipt = pool
        .transaction(async |tx| {
            // An erased person is not re-created, and nothing of a person
            // being erased changes; neither delivery is recorded (its payload
            // is theirs). 200 all the same: LearnWorlds would retry anything
            // else for days.
            if let Some(apply) = &apply {
                let refused = match standing(
                    tx,
                    erasure,
                    &apply.user.lms_user_id,
                    &apply.user.email,
                )
                .await?
                {
                    Standing::Open => None,
                    Standing::Erased => Some("erased"),
                    Standing::ErasurePending => Some("erasure_pending"),
                };
                if let Some(outcome) = refused {
                    tracing::info!(
                        outcome,
                        "a webhook for an erased or erasing person was refused"
                    );
                    return Ok::<_, ApiError>(Receipt {
                        outcome,
                        event_id: None,
                        user_id: None,
                        membership: None,
                    });
                }
            }
            let record = if apply.is_some() {
                RECORD_USER_DELIVERY_SQL
            } else {
                RECORD_OTHER_DELIVERY_SQL
            };
            let event_id: Option<Uuid> = db::query_scalar(record)
                .bind(&digest)
                .bind(event.event_type.as_deref().map(|s| truncate(s, 255)))
                .bind(event.trigger.as_deref().map(|s| truncate(s, 255)))
                .bind(event.user.as_ref().map(|u| truncate(&u.lms_user_id, 255)))
                .bind(outcome)
                .bind(storable(payload).as_ref())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(event_id) = event_id else {
                return Ok::<_, ApiError>(Receipt {
                    outcome: "duplicate",
                    event_id: None,
                    user_id: None,
                    membership: None,
                });
            };
            let user_id = match &apply {
                Some(apply) => Some(
                    users::sync_as_of(tx, registry, &apply.user, false, apply.as_of)
                        .await?
                        .id,
                ),
                None => None,
            };
            Ok(Receipt {
                outcome,
                event_id: Some(event_id),
                user_id,
                membership: apply.as_ref().map(|a| a.membership),
            })
        })
        .await?;
    // A duplicate recorded nothing.
    if receipt.event_id.is_some() {
        tracing::info!(
            event_type = ?event.event_type,
            outcome,
            membership = receipt.membership,
            user_id = ?receipt.user_id,
            "webhook received"
        );
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
            json!({"type": "awardedCertificate", "data": {"user": user(), "certificate": {}}}),
            json!({"type": "learningProgramCompleted", "data": {"user": user()}}),
            json!({"type": "subscriptionPaymentPlanCanceled", "data": {"user": user()}}),
            json!({"type": "subscriptionTrialStarted", "data": {"user": user()}}),
            json!({"type": "subscriptionTrialWillEnd", "data": {"user": user()}}),
            json!({"type": "previewedFree", "data": {"user": user()}}),
            json!({"type": "subscriptionUpdated", "data": {"user": user()}}),
            json!({"type": "subscriptionPaymentPlanBought", "data": {"user": {"user": user()}}}),
            json!({"type": "userTagAdded", "trigger": "user_tag_added", "data": user()}),
            json!({"type": "userTagDeleted", "trigger": "user_tag_deleted", "data": user()}),
        ];
        for payload in cases {
            let event = interpret(&payload).unwrap();
            let user = event.user.unwrap_or_else(|| panic!("no user in {payload}"));
            assert_eq!(user.lms_user_id, "64a0f0000000000000000001");
            assert_eq!(user.email, "ana@example.test");
            assert_eq!(user.full_name, "Ana Lopes");
        }
    }

    #[test]
    fn a_delivery_never_claims_a_membership_whatever_its_tags_say() {
        for event_type in [
            "userUpdated",
            "userTagAdded",
            "userTagDeleted",
            "productBought",
        ] {
            let payload = match event_type {
                "userTagAdded" | "userTagDeleted" => json!({"type": event_type, "data": user()}),
                _ => json!({"type": event_type, "data": {"user": user()}}),
            };
            let user = interpret(&payload).unwrap().user.unwrap();
            assert_eq!(user.organization, Membership::Unchanged, "{event_type}");
        }
        // The object itself still says what it carries, for LearnWorlds' API.
        let object = user();
        let read = read_user(object.as_object().unwrap()).unwrap();
        assert_eq!(read.tags, Some(vec!["vip", "org:acme"]));
        assert_eq!(read.company, Some("Acme Ltd"));
    }

    #[test]
    fn each_event_type_with_a_documented_time_carries_it_and_no_other_does() {
        let at = |payload: Value| interpret(&payload).unwrap().occurred_at;
        let expected = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let seconds = 1_767_225_600;
        let with = |event_type: &str, data: Value| {
            let mut data = data;
            data["user"] = user();
            json!({"type": event_type, "data": data})
        };
        for payload in [
            with(
                "courseCompleted",
                json!({"completed_at": "2026-01-01T00:00:00Z"}),
            ),
            with("courseCompleted", json!({"completed_at": 1_767_225_600.0})),
            with(
                "learningProgramCompleted",
                json!({"completed_at": 1_767_225_600.0}),
            ),
            with("enrolledFreeCourse", json!({"date": seconds})),
            with("subscriptionPaymentPlanCanceled", json!({"date": seconds})),
            with("subscriptionTrialStarted", json!({"date": seconds})),
            with("subscriptionTrialWillEnd", json!({"date": seconds})),
            with(
                "productBought",
                json!({"payment": {"paid_at": 1_767_225_600.0, "created": 1.0}}),
            ),
            with(
                "awardedCertificate",
                json!({"certificate": {"issued": 1_767_225_600.0}}),
            ),
            with(
                "subscriptionUpdated",
                json!({"created_at": "2026-01-01T02:00:00+02:00"}),
            ),
            json!({"type": "subscriptionPaymentPlanBought",
                   "data": {"user": {"user": user()}, "date": 1, "payment": {"paid_at": seconds}}}),
            json!({"type": "subscriptionPaymentPlanBought",
                   "data": {"user": {"user": user()}, "date": seconds}}),
        ] {
            assert_eq!(at(payload.clone()), Some(expected), "{payload}");
        }
        // No time, an unreadable one, or one where the type documents none;
        // never the user's own `created` or `last_login`.
        for payload in [
            with("courseCompleted", json!({"completed_at": "soon"})),
            with("courseCompleted", json!({})),
            with("enrolledFreeCourse", json!({"date": "tuesday"})),
            with(
                "userUpdated",
                json!({"completed_at": 1_767_225_600.0, "date": seconds}),
            ),
            with("previewedFree", json!({"date": seconds})),
            with("userUnenrolledFromProduct", json!({"date": seconds})),
            json!({"type": "userTagAdded", "data": user()}),
        ] {
            assert_eq!(at(payload.clone()), None, "{payload}");
        }
    }

    #[test]
    fn a_key_given_twice_is_refused_only_where_it_is_read() {
        let payload = json!({"type": "userUpdated", "data": {"user": user()}});
        let refused = |duplicates: &[&str]| {
            let duplicates: Vec<String> = duplicates.iter().map(|d| (*d).to_owned()).collect();
            refuse_ambiguous(&payload, &duplicates).is_err()
        };
        for read in [
            "/type",
            "/data",
            "/data/user",
            "/data/user/id",
            "/data/user/email",
            "/data/user/first_name",
            "/data/user/last_name",
            "/data/user/username",
        ] {
            assert!(refused(&[read]), "{read}");
        }
        for unread in [
            "/version",
            "/school_id",
            "/data/user/bio",
            "/data/user/fields/cf_x",
            "/data/user/emails",
            "/data/course",
            "/data/user/billing_info/bf_name",
        ] {
            assert!(!refused(&[unread]), "{unread}");
        }
        // Flat in `data` for the tag events.
        let tag = json!({"type": "userTagAdded", "data": user()});
        assert!(refuse_ambiguous(&tag, &["/data/email".to_owned()]).is_err());
        assert!(refuse_ambiguous(&tag, &["/data/tags".to_owned()]).is_ok());
    }

    #[test]
    fn nul_is_refused_in_what_is_stored_and_replaced_elsewhere() {
        let mut bad = user();
        bad["email"] = json!("ana\u{0}@example.test");
        let mut named = user();
        named["last_name"] = json!("Lo\u{0}pes");
        for payload in [
            json!({"type": "userUpdated", "data": {"user": bad}}),
            json!({"type": "userUpdated", "data": {"user": named}}),
            json!({"type": "user\u{0}Updated", "data": {}}),
            json!({"type": "leadCreated", "trigger": "x\u{0}", "data": {}}),
        ] {
            let refused = interpret(&payload).and_then(|e| match e.user {
                Some(user) => user.validate(),
                None => Ok(()),
            });
            assert_eq!(refused.unwrap_err().status().as_u16(), 422, "{payload}");
        }
        let mut unread = user();
        unread["bio"] = json!("a\u{0}b");
        unread["fields"]["cf_\u{0}"] = json!(["\u{0}"]);
        let payload = json!({"type": "userUpdated", "data": {"user": unread}});
        assert!(
            interpret(&payload)
                .unwrap()
                .user
                .unwrap()
                .validate()
                .is_ok()
        );
        let stored = storable(&payload);
        assert_eq!(stored["data"]["user"]["bio"], "a\u{FFFD}b");
        assert_eq!(
            stored["data"]["user"]["fields"]["cf_\u{FFFD}"],
            json!(["\u{FFFD}"])
        );
        assert!(!stored.to_string().contains("\\u0000"));
        let clean = json!({"type": "userUpdated", "data": {"user": user()}});
        assert!(matches!(storable(&clean), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn events_without_a_user_are_ignored_not_rejected() {
        for payload in [
            json!({"type": "leadCreated", "data": {"email": "john@doe.com"}}),
            json!({"type": "paymentCreated", "data": {"payment": {"user_id": "6130afb278d2c94eeb228d12"}}}),
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
