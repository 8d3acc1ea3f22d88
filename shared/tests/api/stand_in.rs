//! A local stand-in for LearnWorlds' REST API (the real one is out of reach of
//! tests): the token and user requests as LearnWorlds documents them, over
//! plain HTTP on 127.0.0.1, with the school's users held in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use shared::foundation::config::{LearnWorldsApiSettings, Secret};

pub const LW_CLIENT_ID: &str = "api-test-lw-client";
pub const LW_CLIENT_SECRET: &str = "api-test-lw-client-secret-value";
pub const LW_ACCESS_TOKEN_SECRET: &str = "api-test-lw-access-token-value";

#[derive(Default)]
struct School {
    users: HashMap<String, Value>,
    /// Every request is answered with this status instead.
    failing: Option<StatusCode>,
    token_requests: usize,
    user_requests: usize,
}

pub struct StandIn {
    pub base_url: String,
    school: Arc<Mutex<School>>,
}

impl StandIn {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/admin/api", listener.local_addr().unwrap());
        let school = Arc::new(Mutex::new(School::default()));
        let serving = Arc::clone(&school);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let school = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let school = Arc::clone(&school);
                        async move { Ok::<_, std::convert::Infallible>(answer(&school, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { base_url, school }
    }

    /// The settings that point the service at this stand-in.
    pub fn settings(&self) -> LearnWorldsApiSettings {
        LearnWorldsApiSettings {
            base_url: self.base_url.clone(),
            client_id: LW_CLIENT_ID.into(),
            client_secret: Secret::new(LW_CLIENT_SECRET),
        }
    }

    /// The user as LearnWorlds holds them from now on.
    pub fn set_user(&self, id: &str, email: &str, tags: &[&str]) {
        let user = json!({
            "id": id, "email": email, "username": email.split('@').next(),
            "first_name": "Ana", "last_name": "Lopes", "tags": tags,
            "fields": {"company": "Acme Bakery", "cf_size": "10"},
            "role": {"level": "user", "name": "User"}, "is_admin": false,
            "created": 1_700_000_000.25, "last_login": 1_700_000_100.5
        });
        self.school
            .lock()
            .unwrap()
            .users
            .insert(id.to_owned(), user);
    }

    pub fn set_user_object(&self, id: &str, user: Value) {
        self.school
            .lock()
            .unwrap()
            .users
            .insert(id.to_owned(), user);
    }

    pub fn remove_user(&self, id: &str) {
        self.school.lock().unwrap().users.remove(id);
    }

    /// Every request answered with `status` (None: as LearnWorlds would).
    pub fn fail_with(&self, status: Option<StatusCode>) {
        self.school.lock().unwrap().failing = status;
    }

    /// (token requests, user requests) so far.
    pub fn requests(&self) -> (usize, usize) {
        let school = self.school.lock().unwrap();
        (school.token_requests, school.user_requests)
    }
}

fn json_answer(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn error(status: StatusCode, context: &str, message: &str) -> Response<Full<Bytes>> {
    json_answer(
        status,
        &json!({"errors": [{"code": status.as_u16(), "context": context, "message": message}], "success": false}),
    )
}

async fn answer(school: &Mutex<School>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut school = school.lock().unwrap();
    if let Some(status) = school.failing {
        return error(status, "stand_in", "failing on purpose");
    }
    let path = parts.uri.path();
    if parts.method == Method::POST && path == "/admin/api/oauth2/access_token" {
        school.token_requests += 1;
        let asked: Value = serde_json::from_slice(&body).unwrap_or_default();
        let granted = header("lw-client") == LW_CLIENT_ID
            && asked["client_id"] == LW_CLIENT_ID
            && asked["client_secret"] == LW_CLIENT_SECRET
            && asked["grant_type"] == "client_credentials";
        if !granted {
            return error(
                StatusCode::BAD_REQUEST,
                "client_id",
                "Missing client_id or client cannot be found.",
            );
        }
        return json_answer(
            StatusCode::OK,
            &json!({"tokenData": {"access_token": LW_ACCESS_TOKEN_SECRET, "token_type": "Bearer",
                                  "expires_in": 8000},
                    "errors": [], "success": true}),
        );
    }
    if parts.method == Method::GET
        && let Some(id) = path.strip_prefix("/admin/api/v2/users/")
    {
        school.user_requests += 1;
        if header("authorization") != format!("Bearer {LW_ACCESS_TOKEN_SECRET}")
            || header("lw-client") != LW_CLIENT_ID
        {
            return error(StatusCode::UNAUTHORIZED, "access_token", "Unauthorized");
        }
        return match school.users.get(id) {
            Some(user) => json_answer(StatusCode::OK, user),
            None => error(StatusCode::NOT_FOUND, "user", "User not found"),
        };
    }
    error(StatusCode::NOT_FOUND, "route", "Not found")
}
