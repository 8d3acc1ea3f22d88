//! The HTTP face of the service: one `App` handles API Gateway (payload v2)
//! requests through lambda_http. Each Lambda binary builds it for its own routes;
//! the local server builds it for all of them.

use std::convert::Infallible;
use std::error::Error as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{self, Launch, TokenKeys};
use crate::config::{ApiSettings, ConfigError, DatabaseSettings, Environment};
use crate::error::ApiError;
use crate::http::body;
use crate::http::routes::{self, Endpoint, Function, HEALTH_PATH, Matched};
use crate::registry::{Registry, Tool};
use crate::submissions::{Idempotency, IfMatch, SaveRequest};
use crate::{db, dependencies, progress, secrets, submissions, users, webhooks};

pub struct App {
    pub pool: db::Pool,
    pub registry: &'static Registry,
    pub settings: ApiSettings,
    keys: TokenKeys,
    /// `None`: every route (the local server).
    function: Option<Function>,
}

impl App {
    pub fn new(
        pool: db::Pool,
        registry: &'static Registry,
        settings: ApiSettings,
        function: Option<Function>,
    ) -> Self {
        let keys = TokenKeys::new(&settings);
        Self {
            pool,
            registry,
            settings,
            keys,
            function,
        }
    }

    /// The cold start of a route function: settings from the environment and
    /// Secrets Manager, the registry, and the pool's first connection, opened
    /// while the rest is built. A database that cannot be reached does not fail
    /// the cold start: requests answer 503 until it can.
    pub async fn from_env(function: Option<Function>) -> Result<Self, ConfigError> {
        let source = secrets::resolve(&Environment).await?;
        let database = DatabaseSettings::from_source(&source)?;
        let settings = ApiSettings::from_source(&source)?;
        // A request uses one connection.
        let pool = cold_start_pool(&database, 1).await?;
        Ok(Self::new(pool, Registry::embedded(), settings, function))
    }

    pub fn issue_token(&self, user_id: Uuid) -> Result<(String, u64), ApiError> {
        self.keys.issue(user_id, unix_now())
    }

    /// The lambda_http entry point: never an `Err`, so API Gateway always gets
    /// our JSON answer rather than its own 502.
    pub async fn handle_lambda(&self, request: Request) -> Result<Response<Body>, Infallible> {
        Ok(self.handle(request).await)
    }

    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let request_id = request_id(&request);
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let span = tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
        async {
            let mut log = RequestLog::default();
            let result = match tokio::time::timeout(
                self.settings.request_timeout,
                self.dispatch(request, &mut log),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(ApiError::Timeout),
            };
            let response = match result {
                Ok(response) => response,
                Err(error) => error_response(&error, &request_id),
            };
            let status = response.status().as_u16();
            let duration_ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                status,
                duration_ms,
                user_id = log.user_id.map(tracing::field::display),
                tool = log.tool,
                outcome = log.outcome,
                "request finished"
            );
            with_request_id(response, &request_id)
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        request: Request,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, ApiError> {
        if request.uri().path() == HEALTH_PATH && self.function.is_none() {
            if request.method() != Method::GET {
                return Err(ApiError::MethodNotAllowed { allow: vec!["GET"] });
            }
            return Ok(json_response(StatusCode::OK, &json!({ "status": "ok" })));
        }
        // A CORS preflight. Behind API Gateway it reaches the function of the
        // `$default` route, and the gateway adds the CORS headers it is
        // configured with; the local server answers preflights before this.
        if request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::NO_CONTENT;
            return Ok(response);
        }
        let (route, params) = match routes::match_route(request.method(), request.uri().path()) {
            Matched::Route(route, params)
                if self.function.is_none_or(|own| own == route.function) =>
            {
                (route, params)
            }
            // Another function's route: API Gateway routes it there, never here.
            Matched::Route(..) | Matched::NotFound => {
                return Err(ApiError::NotFound("route_not_found"));
            }
            Matched::WrongMethod(allow) => return Err(ApiError::MethodNotAllowed { allow }),
        };
        let call = Call::new(&request, &self.settings)?;
        match route.endpoint {
            Endpoint::LearnWorldsWebhook => self.webhook(&call, log).await,
            Endpoint::CreateSession => self.create_session(&call, log).await,
            Endpoint::OwnProgress => {
                call.allow_query(&[])?;
                let caller = self.caller(&call, log)?;
                self.progress(caller, caller).await
            }
            Endpoint::UserProgress => {
                call.allow_query(&[])?;
                let caller = self.caller(&call, log)?;
                let target = parse_uuid(&params[0], "user_id")?;
                self.progress(caller, target).await
            }
            Endpoint::ToolDependencies => {
                let caller = self.caller(&call, log)?;
                let target = call.target_user(caller)?;
                let tool = self.tool(&params[0], log)?;
                let resolution = self
                    .read(async |conn| {
                        dependencies::resolve(conn, self.registry, tool, caller, target).await
                    })
                    .await?;
                Ok(json_response(StatusCode::OK, &resolution))
            }
            Endpoint::GetSubmission => {
                let caller = self.caller(&call, log)?;
                let target = call.target_user(caller)?;
                let tool = self.tool(&params[0], log)?;
                let view = self
                    .read(async |conn| submissions::get(conn, tool, caller, target).await)
                    .await?;
                let etag = view.submission.as_ref().map(|s| s.version);
                Ok(with_etag(json_response(StatusCode::OK, &view), etag))
            }
            Endpoint::SaveSubmission => self.save(&call, &params[0], log).await,
        }
    }

    /// Runs one request's reads (see [`db::Pool::read`]).
    async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&mut PgConnection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.pool.read(read).await
    }

    /// The signed-in user: the `sub` of a valid bearer token.
    fn caller(&self, call: &Call<'_>, log: &mut RequestLog) -> Result<Uuid, ApiError> {
        let token = auth::bearer(call.header(header::AUTHORIZATION))?;
        let user = self.keys.verify(token)?;
        log.user_id = Some(user);
        Ok(user)
    }

    /// A slug from the path is only ever looked up in the registry.
    fn tool(&self, slug: &str, log: &mut RequestLog) -> Result<&'static Tool, ApiError> {
        let tool = self
            .registry
            .tool(slug)
            .ok_or(ApiError::NotFound("tool_not_found"))?;
        log.tool = Some(tool.slug.as_str());
        Ok(tool)
    }

    async fn progress(&self, caller: Uuid, target: Uuid) -> Result<Response<Body>, ApiError> {
        let progress = self
            .read(async |conn| progress::for_user(conn, self.registry, caller, target).await)
            .await?;
        Ok(json_text_response(StatusCode::OK, progress.to_json()))
    }

    async fn save(
        &self,
        call: &Call<'_>,
        slug: &str,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, ApiError> {
        call.allow_query(&[])?;
        let caller = self.caller(call, log)?;
        let tool = self.tool(slug, log)?;
        let body = call.json_body()?;
        let if_match = call
            .strict_header("if-match")?
            .map(IfMatch::parse)
            .transpose()?;
        // Fingerprint the body before it moves into the request (no copy).
        let idempotency = call
            .strict_header("idempotency-key")?
            .map(|key| Idempotency::new(key, tool, &body))
            .transpose()?;
        let request = SaveRequest::from_json(body)?;
        let saved = submissions::save(
            &self.pool,
            self.registry,
            tool,
            caller,
            &request,
            if_match,
            idempotency.as_ref(),
        )
        .await?;
        log.outcome = Some(match (saved.replayed, request.kind) {
            (true, _) => "replayed",
            (false, submissions::SaveKind::Draft) => "draft_saved",
            (false, submissions::SaveKind::Submit) => "submitted",
        });
        let outcome = &saved.outcome;
        let outputs = if outcome.submission.status == "submitted" {
            submissions::extract_outputs(tool, &outcome.submission.data)
        } else {
            serde_json::Map::new()
        };
        let status = if saved.created() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = json!({
            "tool": tool.slug,
            "submission": outcome.submission,
            "outputs": outputs,
            "progress": outcome.progress,
            "unlocked_tools": outcome.unlocked,
        });
        let mut response = with_etag(
            json_response(status, &body),
            Some(outcome.submission.version),
        );
        if saved.replayed {
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        Ok(response)
    }

    async fn webhook(
        &self,
        call: &Call<'_>,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, ApiError> {
        call.allow_query(&[])?;
        // The signature is checked on the raw bytes before anything is parsed.
        auth::verify_webhook(
            self.settings.webhook_secret.as_ref(),
            self.settings.webhook_signature_mode,
            call.header_named("learnworlds-webhook-signature"),
            call.body,
        )?;
        let payload = call.json_body()?;
        let receipt = webhooks::receive(&self.pool, self.registry, call.body, &payload).await?;
        log.user_id = receipt.user_id;
        log.outcome = Some(receipt.outcome);
        Ok(json_response(StatusCode::OK, &receipt))
    }

    async fn create_session(
        &self,
        call: &Call<'_>,
        log: &mut RequestLog,
    ) -> Result<Response<Body>, ApiError> {
        call.allow_query(&[])?;
        let body = call.json_body()?;
        let launch = Launch::from_json(body)?;
        auth::verify_launch(
            self.settings.launch_secret.as_ref(),
            &launch,
            unix_now() as i64,
            self.settings.launch_max_age,
        )?;
        let user = users::LmsUser {
            lms_user_id: launch.lms_user_id.clone(),
            email: launch.email.clone(),
            full_name: launch.name.clone(),
            organization: users::Membership::Unchanged,
        };
        user.validate()?;
        // The answer is made inside the transaction that uses up the launch:
        // if anything fails before the commit, the launch is still unused,
        // and the 503's retry can succeed instead of meeting "already used".
        let (user, token, expires_at, progress) = self
            .pool
            .transaction(async |tx| {
                let first_use: bool = db::query_scalar(users::CLAIM_LAUNCH_SQL)
                    .bind(launch.signature.to_ascii_lowercase())
                    .bind(&launch.lms_user_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(false);
                if !first_use {
                    return Err(ApiError::Unauthorized(
                        "this launch was already used; open the tool from LearnWorlds again",
                    ));
                }
                let user = users::sync(tx, self.registry, &user, true).await?;
                let (token, expires_at) = self.issue_token(user.id)?;
                let progress = progress::for_user(tx, self.registry, user.id, user.id).await?;
                Ok((user, token, expires_at, progress))
            })
            .await?;
        log.user_id = Some(user.id);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "token": token,
                "token_type": "Bearer",
                "expires_at": expires_at,
                "user": user,
                "progress": progress.summary,
            }),
        ))
    }
}

/// What a request log line reports besides status and duration.
#[derive(Default)]
struct RequestLog {
    user_id: Option<Uuid>,
    tool: Option<&'static str>,
    outcome: Option<&'static str>,
}

/// The parts of a request the endpoints read, checked once.
struct Call<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    query: Vec<(String, String)>,
    body: &'a [u8],
    max_body_bytes: usize,
}

impl<'a> Call<'a> {
    fn new(request: &'a Request, settings: &ApiSettings) -> Result<Self, ApiError> {
        let body: &[u8] = request.body().as_ref();
        Ok(Self {
            method: request.method(),
            headers: request.headers(),
            query: parse_query(request.uri().query().unwrap_or_default())?,
            body,
            max_body_bytes: settings.max_body_bytes,
        })
    }

    fn header(&self, name: header::HeaderName) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn header_named(&self, name: &'static str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header that changes what a write does: present but not visible ASCII
    /// is a 400, never "absent"; so is one sent twice, which API Gateway would
    /// join with a comma and the local server would not.
    fn strict_header(&self, name: &'static str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ApiError::BadRequest(format!(
                "the {name} header must be sent once"
            )));
        }
        value
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("the {name} header must be visible ASCII")))
    }

    /// The body as strict JSON: size, then Content-Type, then syntax.
    fn json_body(&self) -> Result<Value, ApiError> {
        debug_assert!(self.method == Method::POST || self.method == Method::PUT);
        body::check_size(self.body, self.max_body_bytes)?;
        body::require_json_content_type(self.header(header::CONTENT_TYPE))?;
        body::parse_json(self.body)
    }

    fn allow_query(&self, allowed: &[&str]) -> Result<(), ApiError> {
        if let Some((name, _)) = self
            .query
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter `{name}`"
            )));
        }
        Ok(())
    }

    /// `?user_id=` for a guru or admin reading someone else; the caller by default.
    fn target_user(&self, caller: Uuid) -> Result<Uuid, ApiError> {
        self.allow_query(&["user_id"])?;
        let mut values = self.query.iter().filter(|(name, _)| name == "user_id");
        match (values.next(), values.next()) {
            (None, _) => Ok(caller),
            (Some((_, value)), None) => parse_uuid(value, "user_id"),
            (Some(_), Some(_)) => Err(ApiError::BadRequest("`user_id` may be given once".into())),
        }
    }
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match (decode_component(name), decode_component(value)) {
                (Some(name), Some(value)) => Ok((name, value)),
                _ => Err(ApiError::BadRequest("the query string is not valid".into())),
            }
        })
        .collect()
}

fn decode_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(s.get(i + 1..i + 3)?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn parse_uuid(value: &str, name: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| ApiError::BadRequest(format!("`{name}` must be a UUID")))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// API Gateway's request id when there is one (it is what clients and access
/// logs see), otherwise a fresh one.
fn request_id(request: &Request) -> String {
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .filter(|id| !id.is_empty())
    .unwrap_or_else(|| Uuid::new_v4().to_string())
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    json_text_response(
        status,
        serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned()),
    )
}

/// A JSON answer already written out.
fn json_text_response(status: StatusCode, text: String) -> Response<Body> {
    // Text, not Binary: API Gateway then passes it on without base64.
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn with_etag(mut response: Response<Body>, version: Option<i32>) -> Response<Body> {
    if let Some(version) = version
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

fn with_request_id(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

pub fn error_response(error: &ApiError, request_id: &str) -> Response<Body> {
    if error.is_server_fault() {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        tracing::error!(error = %error, causes = ?causes, "request failed");
    }
    let mut response = json_response(error.status(), &error.body(request_id));
    let headers = response.headers_mut();
    if let ApiError::MethodNotAllowed { allow } = error
        && let Ok(value) = HeaderValue::from_str(&allow.join(", "))
    {
        headers.insert(header::ALLOW, value);
    }
    if error.status() == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The cold start of a job function: its pool with the `connections` a run
/// uses open, and the registry built.
pub async fn pool_from_env(connections: usize) -> Result<db::Pool, ConfigError> {
    let source = secrets::resolve(&Environment).await?;
    cold_start_pool(&DatabaseSettings::from_source(&source)?, connections).await
}

/// Every function's cold start: the pool, with the connections its first
/// invocation needs opened while the registry is built, and open (or logged as
/// unreachable) at the end.
async fn cold_start_pool(
    database: &DatabaseSettings,
    connections: usize,
) -> Result<db::Pool, ConfigError> {
    // On Lambda the URL comes from a secret, which a rotation may change
    // while this container is warm: the pool reads it again if refused.
    let pool = db::Pool::following(database, secrets::database_url_reader(&Environment))?;
    pool.connect_early(connections).await;
    Registry::embedded();
    pool.finish_connecting().await;
    Ok(pool)
}

/// For binaries: logs a configuration error as one line and exits.
pub fn exit_on_config_error<T>(result: Result<T, ConfigError>) -> T {
    result.unwrap_or_else(|error| {
        tracing::error!("{error}");
        std::process::exit(1)
    })
}
