//! The soak's mix of requests: reads, draft saves, submits and LearnWorlds
//! syncs, by participants picked at random.

use serde_json::json;
use uuid::Uuid;

use crate::fixtures::webhook_request;
use crate::http;
use crate::rng::Rng;
use shared::Registry;
use shared::registry::Forms;

/// A generated participant, with a token.
pub struct Participant {
    pub id: Uuid,
    pub lms_user_id: String,
    pub token: String,
}

/// What to remember of a request if it is acknowledged.
pub enum Write {
    None,
    /// A save of (user, tool), over the version sent as If-Match (none: a
    /// first save, as far as the clients know).
    Save(Uuid, String, Option<i64>),
    NewUser(String),
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// One request of the mix, and what it writes. A save sends as If-Match the
/// version `known` says the clients last saw of that submission, as a browser
/// sends the ETag it last read.
pub fn next_request(
    rng: &mut Rng,
    registry: &Registry,
    people: &[Participant],
    (worker, n): (usize, u64),
    known: impl Fn(Uuid, &str) -> Option<i64>,
) -> (http::Request, Write) {
    let who = pick(rng, people);
    let auth = ("authorization", format!("Bearer {}", who.token));
    let tool = pick(rng, registry.tools());
    let roll = rng.below(100);
    let get = |path: String| http::Request {
        method: "GET",
        path,
        headers: vec![auth.clone()],
        body: None,
    };
    match roll {
        0..=14 => (get("/progress".into()), Write::None),
        15..=29 => (
            get(format!("/tools/{}/dependencies", tool.slug)),
            Write::None,
        ),
        30..=39 => (get(format!("/tools/{}/submission", tool.slug)), Write::None),
        40..=84 => {
            let submit = roll >= 65;
            let mut data = serde_json::Map::new();
            for (i, output) in tool.outputs.iter().enumerate() {
                if submit || i % 2 == 0 {
                    let text = format!("{} by worker {worker}, request {n}", output.key);
                    // A submit's values take their form's shapes.
                    let value = Forms::embedded()
                        .tool(&tool.slug)
                        .and_then(|form| form.output(&output.key))
                        .map_or_else(|| json!(text), |form| form.shape.example(&text));
                    data.insert(output.key.clone(), value);
                }
            }
            let status = if submit { "submitted" } else { "draft" };
            let version = known(who.id, &tool.slug);
            let mut headers = vec![auth, ("content-type", "application/json".into())];
            if let Some(version) = version {
                headers.push(("if-match", format!("\"{version}\"")));
            }
            (
                http::Request {
                    method: "PUT",
                    path: format!("/tools/{}/submission", tool.slug),
                    headers,
                    body: Some(json!({"data": data, "status": status}).to_string()),
                },
                Write::Save(who.id, tool.slug.clone(), version),
            )
        }
        _ => {
            // A LearnWorlds sync: a new participant, or an update of one we have.
            let new = roll >= 93;
            let lms = if new {
                format!("5a{worker:04x}{n:018x}")
            } else {
                who.lms_user_id.clone()
            };
            let email = if new {
                format!("soak-{lms}@bench.test")
            } else {
                format!("updated-{lms}@bench.test")
            };
            let body = json!({
                "version": 2, "type": "userUpdated", "trigger": "user_updated", "school_id": "soak",
                "data": {"user": {"id": lms, "email": email, "username": lms,
                    "first_name": "Soak", "last_name": format!("Worker {worker}"), "tags": ["org:soak"]}}
            });
            (
                webhook_request(body.to_string()),
                if new {
                    Write::NewUser(lms)
                } else {
                    Write::None
                },
            )
        }
    }
}
