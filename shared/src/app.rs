//! The façade: one `App` handles API Gateway (payload v2) requests through
//! lambda_http. It matches a request to its route, authenticates the caller
//! as the route requires, and hands the request to the route's feature. Each
//! Lambda binary builds it for its own routes; the local server for all.

use std::convert::Infallible;
use std::time::Instant;

use http::{Method, StatusCode, header};
use http_body_util::BodyExt;
use lambda_http::Request;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::foundation::config::{ApiSettings, ConfigError};
use crate::foundation::db::{self, Login};
use crate::foundation::error::ApiError;
use crate::http::routes::{self, Endpoint, Function, HEALTH_PATH, Matched};
use crate::http::{self as api, Context, Response, response, stream};
use crate::identity::learnworlds::LearnWorldsApi;
use crate::identity::tombstones::ErasureKeys;
use crate::registry::Registry;
use crate::sessions::{self, TokenKeys};
use crate::{
    audit, dependencies, identity, progress, reports, rights, staff, startup, submissions, tools,
};

pub struct App {
    pub context: Context,
    keys: TokenKeys,
    /// LearnWorlds' API, which confirms what a webhook delivery says.
    learnworlds: LearnWorldsApi,
    /// The keys of erased people's hashes: only in the functions that need
    /// them (`routes::hashes_erased_people`).
    erasure: Option<ErasureKeys>,
    /// `None`: every route (the local server).
    function: Option<Function>,
}

/// The keys a function holds, taken out of its settings.
struct Keys {
    tokens: TokenKeys,
    erasure: Option<ErasureKeys>,
}

impl App {
    /// The app of `function` (`None`: every route).
    pub fn new(
        pool: db::Pool,
        registry: &'static Registry,
        mut settings: ApiSettings,
        function: Option<Function>,
    ) -> Result<Self, ConfigError> {
        let keys = Self::keys(&mut settings, function)?;
        Ok(Self::assemble(pool, registry, settings, keys, function))
    }

    /// The cold start of a route function (see [`startup::api_from_env`]), or
    /// of the local server (`None`), which serves every route for a developer
    /// as whoever their URL names.
    pub async fn from_env(function: Option<Function>) -> Result<Self, ConfigError> {
        let login = match function {
            Some(_) => Login::Runtime,
            None => Login::Any,
        };
        let (settings, keys, pool) =
            startup::api_from_env(login, |settings| Self::keys(settings, function)).await?;
        Ok(Self::assemble(
            pool,
            Registry::embedded(),
            settings,
            keys,
            function,
        ))
    }

    /// Only a function that creates sessions gets the key that signs tokens;
    /// the others verify them. Only the functions that sync users or serve
    /// data rights get the erasure key, which they need. From here on only the
    /// keys hold them.
    fn keys(settings: &mut ApiSettings, function: Option<Function>) -> Result<Keys, ConfigError> {
        let tokens = match routes::mints_tokens(function) {
            true => TokenKeys::minting(settings)?,
            false => TokenKeys::verifying(settings)?,
        };
        settings.jwt_signing_key = None;
        let erasure = settings.erasure_hash_key.take();
        let erasure = match routes::hashes_erased_people(function) {
            true => Some(ErasureKeys::new(
                erasure.ok_or(ConfigError::Missing("ERASURE_HASH_KEY"))?,
            )),
            false => None,
        };
        Ok(Keys { tokens, erasure })
    }

    fn assemble(
        pool: db::Pool,
        registry: &'static Registry,
        settings: ApiSettings,
        keys: Keys,
        function: Option<Function>,
    ) -> Self {
        let learnworlds = LearnWorldsApi::new(settings.learnworlds_api.clone());
        Self {
            context: Context {
                pool,
                registry,
                settings,
            },
            keys: keys.tokens,
            learnworlds,
            erasure: keys.erasure,
            function,
        }
    }

    /// The erasure key, which `Self::keys` gave every function whose routes
    /// need it.
    fn erasure(&self) -> Result<&ErasureKeys, ApiError> {
        self.erasure
            .as_ref()
            .ok_or_else(|| ApiError::Internal("this function holds no erasure key".into()))
    }

    /// A bearer token for `user_id`, valid from now: an error in a function
    /// that only verifies tokens.
    pub fn issue_token(&self, user_id: Uuid) -> Result<(String, u64), ApiError> {
        self.keys.issue(user_id, sessions::handler::unix_now())
    }

    /// The lambda_http entry point: never an `Err`, so API Gateway always gets
    /// our JSON answer rather than its own 502.
    pub async fn handle_lambda(&self, request: Request) -> Result<Response, Infallible> {
        Ok(self.handle(request).await)
    }

    /// One request, within the request timeout, answered and logged; a
    /// download's answer gathered whole (the tests', and any caller that
    /// cannot stream).
    pub async fn handle(&self, request: Request) -> Response {
        let request_id = response::request_id(&request);
        match self.answer(request, &request_id).await {
            Answer::Whole(whole) => whole,
            Answer::Streamed(streamed) => {
                let (parts, body) = streamed.into_parts();
                match body.collect().await {
                    Ok(body) => Response::from_parts(
                        parts,
                        lambda_http::Body::from(body.to_bytes().to_vec()),
                    ),
                    Err(error) => response::with_request_id(
                        response::error(
                            &ApiError::Internal(format!("a download cut off: {error}")),
                            &request_id,
                        ),
                        &request_id,
                    ),
                }
            }
        }
    }

    /// One request whose answer is sent as it is made when it is a download
    /// (`Function::streams`), and whole otherwise: the downloads function's
    /// entry point (its URL streams answers), and the local server's.
    pub async fn handle_streaming(&self, request: Request) -> stream::Streamed {
        let request_id = response::request_id(&request);
        match self.answer(request, &request_id).await {
            Answer::Whole(whole) => stream::whole(whole),
            Answer::Streamed(streamed) => streamed,
        }
    }

    /// The lambda_http entry point of the downloads function.
    pub async fn handle_lambda_streaming(
        &self,
        request: Request,
    ) -> Result<stream::Streamed, Infallible> {
        Ok(self.handle_streaming(request).await)
    }

    async fn answer(&self, request: Request, request_id: &str) -> Answer {
        let started = Instant::now();
        let span = tracing::info_span!("request", request_id = %request_id, method = %request.method(), path = %request.uri().path());
        async {
            let log = api::request::RequestLog::default();
            // A download is timed until its first chunk; what it sends after
            // is bounded by its statement's timeout.
            let result = tokio::time::timeout(
                self.context.settings.request_timeout,
                self.dispatch(&request, &log, request_id),
            )
            .await
            .unwrap_or(Err(ApiError::Timeout));
            // What an error or the timeout abandoned is rolled back before the
            // answer goes out: Lambda may freeze the environment right after.
            self.context.pool.quiesce().await;
            let answer =
                result.unwrap_or_else(|error| Answer::Whole(response::error(&error, request_id)));
            let logged = log.get();
            tracing::info!(
                status = answer.status().as_u16(),
                duration_ms = started.elapsed().as_millis() as u64,
                user_id = logged.user_id.map(tracing::field::display),
                tool = logged.tool,
                outcome = logged.outcome,
                "request finished"
            );
            match answer {
                Answer::Whole(whole) => Answer::Whole(response::with_request_id(whole, request_id)),
                Answer::Streamed(streamed) => {
                    Answer::Streamed(response::with_request_id(streamed, request_id))
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn dispatch(
        &self,
        request: &Request,
        log: &api::request::RequestLog,
        request_id: &str,
    ) -> Result<Answer, ApiError> {
        if request.uri().path() == HEALTH_PATH && self.function.is_none() {
            if request.method() != Method::GET {
                return Err(ApiError::MethodNotAllowed { allow: vec!["GET"] });
            }
            return Ok(Answer::Whole(response::json(
                StatusCode::OK,
                &json!({ "status": "ok" }),
            )));
        }
        // A CORS preflight. Behind API Gateway it reaches the function of the
        // `$default` route, and the gateway adds the CORS headers it is
        // configured with; the local server answers preflights before this.
        if request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return Ok(Answer::Whole(response::empty(StatusCode::NO_CONTENT)));
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
        let ctx = &self.context;
        let call = api::Request::new(
            request,
            params,
            ctx.settings.max_body_bytes,
            log,
            request_id,
        )?;
        let call = &call;
        // Routes signed by LearnWorlds check their own signatures, the refresh
        // routes their refresh token; every other route needs a bearer token.
        let whole = match route.endpoint {
            Endpoint::LearnWorldsWebhook => {
                identity::handler::webhook(ctx, &self.learnworlds, self.erasure()?, call).await
            }
            Endpoint::CreateSession => {
                sessions::handler::create(ctx, &self.keys, self.erasure()?, call).await
            }
            // The refresh token in the body is the credential.
            Endpoint::RefreshSession => sessions::handler::refresh(ctx, &self.keys, call).await,
            Endpoint::EndSession => sessions::handler::logout(ctx, call).await,
            endpoint => {
                let caller = sessions::authenticate(&self.keys, call)?;
                match endpoint {
                    Endpoint::DownloadOwnExport => {
                        let streamed = rights::handler::export_streamed(ctx, call, caller, None);
                        return Ok(Answer::Streamed(streamed.await?));
                    }
                    Endpoint::DownloadUserExport => {
                        let target = call.uuid_param(0, "user_id")?;
                        let streamed =
                            rights::handler::export_streamed(ctx, call, caller, Some(target));
                        return Ok(Answer::Streamed(streamed.await?));
                    }
                    Endpoint::DownloadRoster => {
                        let organization = call.uuid_param(0, "organization_id")?;
                        let streamed =
                            reports::handler::roster_streamed(ctx, call, caller, organization);
                        return Ok(Answer::Streamed(streamed.await?));
                    }
                    Endpoint::OwnProgress => progress::handler::own(ctx, call, caller).await,
                    Endpoint::UserProgress => progress::handler::of_user(ctx, call, caller).await,
                    Endpoint::ListTools => tools::handler::list(call),
                    Endpoint::DescribeTool => tools::handler::get(ctx, call),
                    Endpoint::ToolDependencies => {
                        dependencies::handler::get(ctx, call, caller).await
                    }
                    Endpoint::GetSubmission => submissions::handler::get(ctx, call, caller).await,
                    Endpoint::SaveSubmission => submissions::handler::put(ctx, call, caller).await,
                    Endpoint::Me => identity::profile::me(ctx, call, caller).await,
                    Endpoint::AuditLog => audit::handler::list(ctx, call, caller).await,
                    Endpoint::ExportOwn => rights::handler::export(ctx, call, caller, None).await,
                    Endpoint::ExportUser => {
                        let target = call.uuid_param(0, "user_id")?;
                        rights::handler::export(ctx, call, caller, Some(target)).await
                    }
                    Endpoint::RequestOwnErasure => {
                        rights::handler::request_erasure(ctx, call, caller, None).await
                    }
                    Endpoint::RequestErasure => {
                        let target = call.uuid_param(0, "user_id")?;
                        rights::handler::request_erasure(ctx, call, caller, Some(target)).await
                    }
                    Endpoint::CancelErasure => {
                        let target = call.uuid_param(0, "user_id")?;
                        rights::handler::cancel_erasure(ctx, call, caller, target).await
                    }
                    Endpoint::LiftTombstone => {
                        rights::handler::lift_tombstone(ctx, self.erasure()?, call, caller).await
                    }
                    Endpoint::GetUser => {
                        let target = call.uuid_param(0, "user_id")?;
                        staff::profile::get(ctx, call, caller, target).await
                    }
                    Endpoint::ChangeUser => {
                        let target = call.uuid_param(0, "user_id")?;
                        staff::profile::patch(ctx, call, caller, target).await
                    }
                    Endpoint::UnlockTool => {
                        let target = call.uuid_param(0, "user_id")?;
                        staff::overrides::unlock(ctx, call, caller, target).await
                    }
                    Endpoint::ReopenTool => {
                        let target = call.uuid_param(0, "user_id")?;
                        staff::overrides::reopen(ctx, call, caller, target).await
                    }
                    Endpoint::PostComment => {
                        let target = call.uuid_param(0, "user_id")?;
                        staff::comments::post(ctx, call, caller, target).await
                    }
                    Endpoint::UserComments => {
                        let target = call.uuid_param(0, "user_id")?;
                        staff::comments::list_for(ctx, call, caller, target).await
                    }
                    Endpoint::OwnComments => staff::comments::list_own(ctx, call, caller).await,
                    Endpoint::OwnActivity => staff::comments::activity(ctx, call, caller).await,
                    Endpoint::Organizations => {
                        reports::handler::organizations(ctx, call, caller).await
                    }
                    Endpoint::Roster => {
                        let organization = call.uuid_param(0, "organization_id")?;
                        reports::handler::roster(ctx, call, caller, organization).await
                    }
                    Endpoint::OrganizationFunnel => {
                        let organization = call.uuid_param(0, "organization_id")?;
                        reports::handler::funnel(ctx, call, caller, Some(organization)).await
                    }
                    Endpoint::Funnel => reports::handler::funnel(ctx, call, caller, None).await,
                    Endpoint::SearchUsers => {
                        reports::handler::search_users(ctx, call, caller).await
                    }
                    Endpoint::LearnWorldsWebhook
                    | Endpoint::CreateSession
                    | Endpoint::RefreshSession
                    | Endpoint::EndSession => {
                        unreachable!("matched above")
                    }
                }
            }
        };
        whole.map(Answer::Whole)
    }
}

/// A request's answer: whole, or sent as it is made (a download).
enum Answer {
    Whole(Response),
    Streamed(stream::Streamed),
}

impl Answer {
    fn status(&self) -> StatusCode {
        match self {
            Answer::Whole(whole) => whole.status(),
            Answer::Streamed(streamed) => streamed.status(),
        }
    }
}
