//! API tests: every route through `App::handle`, the function the Lambdas and
//! the local server run, against a fresh PostgreSQL database per test.

mod audit;
mod bad_input;
mod chain;
mod concurrency;
mod demo;
mod dependencies;
mod events;
mod hostile;
mod invariants;
mod learnworlds_payloads;
mod limits;
mod matrix;
mod membership;
mod privileges;
mod progress;
mod recompute;
mod reports;
mod rights;
#[path = "../support/runtime_role.rs"]
mod runtime_role;
mod schemathesis;
mod sessions;
mod spoofing;
mod staff;
mod stand_in;
mod submissions;
mod timeouts;
mod tools;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, Method};
use lambda_http::Body;
use serde_json::{Value, json};
use shared::app::App;
use shared::foundation::config::ApiSettings;
use shared::foundation::keys::SigningKey;
use shared::identity::users::{LmsUser, Membership};
use shared::registry::Registry;
use shared::sessions::TokenKeys;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;

/// The tests' token key pair (Ed25519: `openssl genpkey -algorithm ed25519`).
pub const JWT_PRIVATE_KEY: &str =
    "MC4CAQAwBQYDK2VwBCIEIKe6r8OqLVgPvLlaZSx7Nfy1i6IhDCQhd9ewWTrkRLnO";
pub const JWT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAJOZlA/B736+S5c98HBbiCvM5urM4q9OmuTnVe2qlpjI=";
pub const WEBHOOK_SECRET: &str = "api-test-webhook-secret";
pub const LAUNCH_SECRET: &str = "api-test-launch-secret";
pub const ERASURE_HASH_KEY_SECRET: &str = "api-test-erasure-hash-key-0123456789abcdef";

/// The tests' signing key, as sync-user holds it.
pub fn signing_key() -> SigningKey {
    SigningKey::parse(JWT_PRIVATE_KEY).unwrap()
}

/// The header the service's tokens carry for `key`.
pub fn token_header(key: &SigningKey) -> Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": key.public_key().kid()})
}

/// A token with exactly this header and these claims, signed by `key`
/// (Ed25519), as anyone holding that key could make it.
pub fn forge_token(header: &Value, claims: &Value, key: &SigningKey) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let message = format!("{}.{}", b64(header), b64(claims));
    let pair =
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(key.pkcs8_der()).unwrap();
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.sign(message.as_bytes()));
    format!("{message}.{signature}")
}

/// True when this run goes through a transaction-mode pooler.
pub fn behind_pooler() -> bool {
    std::env::var("FASTTRACK_TEST_POOLER_URL").is_ok()
}

/// Database settings in this run's pooler mode, so that every pool built in the
/// process agrees on how statements are sent.
pub fn database_settings(
    url: String,
    max_connections: u32,
) -> shared::foundation::config::DatabaseSettings {
    shared::foundation::config::DatabaseSettings {
        url: shared::foundation::config::Secret::new(url),
        max_connections,
        acquire_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(7),
        pooler_mode: if behind_pooler() {
            shared::foundation::config::PoolerMode::Transaction
        } else {
            shared::foundation::config::PoolerMode::Session
        },
    }
}

/// The service's logs, at `debug` unless RUST_LOG says otherwise, so a secret
/// that reached a log line would show. With FASTTRACK_TEST_LOG they are appended
/// to that file (make test scans it for the configured secrets); otherwise they
/// go to the test's captured output.
pub fn init_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let filter = shared::foundation::logging::filter(
            std::env::var("RUST_LOG").ok().as_deref(),
            tracing::level_filters::LevelFilter::DEBUG,
        );
        let lines = tracing_subscriber::fmt::layer().with_ansi(false);
        let registry = tracing_subscriber::registry().with(filter);
        let _ = match std::env::var_os("FASTTRACK_TEST_LOG") {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .expect("FASTTRACK_TEST_LOG is a writable file");
                registry
                    .with(lines.with_writer(std::sync::Mutex::new(file)))
                    .try_init()
            }
            None => registry.with(lines.with_test_writer()).try_init(),
        };
    });
}

/// The service's pool on the test's database: the runtime login role, through
/// the pooler when this run has one.
pub async fn service_pool(owner: &PgPool) -> shared::foundation::db::Pool {
    service_pool_with(owner, |_| {}).await
}

/// [`service_pool`], its settings changed by `change` first (say, a shorter
/// statement timeout).
pub async fn service_pool_with(
    owner: &PgPool,
    change: impl FnOnce(&mut shared::foundation::config::DatabaseSettings),
) -> shared::foundation::db::Pool {
    runtime_role::ensure_runtime_login(owner).await;
    let options = owner.connect_options();
    let (host, port) = match std::env::var("FASTTRACK_TEST_POOLER_URL") {
        Ok(url) => {
            let pooler: sqlx::postgres::PgConnectOptions = url
                .parse()
                .expect("FASTTRACK_TEST_POOLER_URL is a PostgreSQL URL");
            (pooler.get_host().to_owned(), pooler.get_port())
        }
        Err(_) => (options.get_host().to_owned(), options.get_port()),
    };
    let url = runtime_role::runtime_url(owner, &host, port).await;
    let mut settings = database_settings(url, 10);
    change(&mut settings);
    shared::foundation::db::Pool::new(&settings).unwrap()
}

pub fn settings(extra: &[(&'static str, &'static str)]) -> ApiSettings {
    let mut vars: HashMap<&str, &str> = HashMap::from([
        ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
        ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
        ("LEARNWORLDS_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("LEARNWORLDS_LAUNCH_SECRET", LAUNCH_SECRET),
        ("ERASURE_HASH_KEY", ERASURE_HASH_KEY_SECRET),
    ]);
    vars.extend(extra.iter().copied());
    ApiSettings::from_source(&vars).unwrap()
}

pub struct TestApp {
    pub app: App,
    pub pool: PgPool,
    /// Signs the test users' tokens, as sync-user would, whichever function
    /// `app` is.
    pub tokens: TokenKeys,
}

pub struct TestUser {
    pub id: Uuid,
    pub token: String,
    pub lms_user_id: String,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl TestResponse {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    pub async fn new(pool: PgPool) -> Self {
        Self::with_settings(pool, settings(&[])).await
    }

    /// The app with LearnWorlds' API at `lms`, as a deployment with API
    /// credentials has it: webhooks confirm what they say with it.
    pub async fn confirming_with(pool: PgPool, lms: &stand_in::StandIn) -> Self {
        let mut settings = settings(&[]);
        settings.learnworlds_api = Some(lms.settings());
        Self::with_settings(pool, settings).await
    }

    /// Migrates as the owner (the test's pool), then serves through a pool that
    /// logs in as the runtime role, as the Lambdas do: no route may need DDL.
    /// With FASTTRACK_TEST_POOLER_URL, that pool goes through the pooler.
    pub async fn with_settings(pool: PgPool, settings: ApiSettings) -> Self {
        Self::serving(pool, settings, None).await
    }

    /// The app as one Lambda function builds it: `None` is the local server.
    pub async fn serving(
        pool: PgPool,
        settings: ApiSettings,
        function: Option<shared::http::routes::Function>,
    ) -> Self {
        Self::serving_from(pool, settings, function, |_| {}).await
    }

    /// The app, its service pool's settings changed by `change` first.
    pub async fn serving_from(
        pool: PgPool,
        settings: ApiSettings,
        function: Option<shared::http::routes::Function>,
        change: impl FnOnce(&mut shared::foundation::config::DatabaseSettings),
    ) -> Self {
        init_logs();
        shared::migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
            .await
            .unwrap();
        let tokens = TokenKeys::minting(&settings).unwrap();
        let app = App::new(
            service_pool_with(&pool, change).await,
            Registry::embedded(),
            settings,
            function,
        )
        .unwrap();
        Self { app, pool, tokens }
    }

    pub fn registry(&self) -> &'static Registry {
        Registry::embedded()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> TestResponse {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = body.map_or(Body::Empty, |b| Body::Binary(b.to_vec()));
        let response = self.app.handle(builder.body(body).unwrap()).await;
        let (parts, body) = response.into_parts();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).expect("every answer is JSON")
        };
        TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        let auth = format!("Bearer {token}");
        self.request(Method::GET, path, &[("authorization", &auth)], None)
            .await
    }

    pub async fn put(
        &self,
        path: &str,
        token: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let auth = format!("Bearer {token}");
        let mut all = vec![
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        all.extend_from_slice(headers);
        self.request(Method::PUT, path, &all, Some(body.to_string().as_bytes()))
            .await
    }

    /// PUT a save of `slug` as a client that has just read the submission:
    /// with its ETag as If-Match once there is one, as an update needs.
    pub async fn save(
        &self,
        user: &TestUser,
        slug: &str,
        data: Value,
        status: &str,
    ) -> TestResponse {
        let path = format!("/tools/{slug}/submission");
        let read = self.get(&path, &user.token).await;
        let if_match: Vec<(&str, &str)> = read
            .header("etag")
            .map(|etag| ("if-match", etag))
            .into_iter()
            .collect();
        let body = json!({ "data": data, "status": status });
        self.put(&path, &user.token, &body, &if_match).await
    }

    /// Submits `slug` with every output key filled.
    pub async fn submit_complete(&self, user: &TestUser, slug: &str) -> TestResponse {
        self.save(user, slug, complete_data(slug), "submitted")
            .await
    }

    /// The LearnWorlds side of [`TestApp::user`]: what a webhook or a launch
    /// for `name` carries.
    pub fn lms_user(name: &str, organization: Option<&str>) -> LmsUser {
        LmsUser {
            lms_user_id: format!("lms-{name}"),
            email: format!("{name}@example.test"),
            full_name: name.to_owned(),
            organization: match organization {
                Some(org) => Membership::from_tags([format!("org:{org}").as_str()], None),
                None => Membership::Unchanged,
            },
        }
    }

    /// A user synced the way LearnWorlds would sync them, with a role set by an admin.
    pub async fn user(&self, name: &str, organization: Option<&str>, role: &str) -> TestUser {
        let user = Self::lms_user(name, organization);
        let lms_user_id = user.lms_user_id.clone();
        let mut conn = self.pool.acquire().await.unwrap();
        let synced = shared::identity::users::sync(&mut conn, self.registry(), &user, false)
            .await
            .unwrap();
        sqlx::query("update shared.users set role = $2 where id = $1")
            .bind(synced.id)
            .bind(role)
            .execute(&mut *conn)
            .await
            .unwrap();
        let token = self.token(synced.id);
        TestUser {
            id: synced.id,
            token,
            lms_user_id,
        }
    }

    /// A bearer token for `user_id`, valid from now.
    pub fn token(&self, user_id: Uuid) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        self.tokens.issue(user_id, now).unwrap().0
    }

    /// A checksum of every row of every table the service writes.
    pub async fn snapshot(&self) -> String {
        let mut tables: Vec<String> = [
            "shared.organizations",
            "shared.users",
            "shared.user_progress",
            "shared.idempotency_keys",
            "shared.webhook_events",
            "shared.webhook_last_deliveries",
            "shared.session_launches",
        ]
        .map(str::to_owned)
        .to_vec();
        for tool in self.registry().tools() {
            tables.push(format!("{}.submissions", tool.schema.quoted()));
            tables.push(format!("{}.field_outputs", tool.schema.quoted()));
        }
        let parts: Vec<String> = tables
            .iter()
            .map(|t| format!("select '{t}' as name, (select md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from {t} x) as digest"))
            .collect();
        let sql = format!(
            "select string_agg(name || ':' || digest, ',' order by name) from ({}) d",
            parts.join(" union all ")
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Puts `user`'s tool back to locked, as an unlock that was missed.
    pub async fn relock(&self, user: &TestUser, slug: &str) {
        sqlx::query(
            "update shared.user_progress set status = 'locked', unlocked_at = null
             where user_id = $1 and tool_slug = $2",
        )
        .bind(user.id)
        .bind(slug)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    pub async fn status_of(&self, user: &TestUser, slug: &str) -> String {
        sqlx::query_scalar(
            "select status::text from shared.user_progress where user_id = $1 and tool_slug = $2",
        )
        .bind(user.id)
        .bind(slug)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// Data that fills every output key of a tool, each value of its form's
/// shape, its text `"<key> for <slug>"`.
pub fn complete_data(slug: &str) -> Value {
    let tool = Registry::embedded().tool(slug).unwrap();
    shared::registry::Forms::embedded()
        .tool(&tool.slug)
        .unwrap()
        .example_data()
}

/// Counts the round trips clients make to PostgreSQL by watching the wire: each
/// simple Query ('Q') and each Sync ('S'), which ends an extended-protocol
/// exchange. A bare Sync, a connection ping, is a round trip too (sqlx's own
/// pool pinged every connection it took back, after the response).
pub struct RoundTripCounter {
    count: Arc<AtomicUsize>,
    pub pool: shared::foundation::db::Pool,
}

impl RoundTripCounter {
    pub async fn new(pool: &PgPool) -> Self {
        Self::with_connections(pool, 1).await
    }

    /// A counter whose service pool holds `connections` (the recompute uses two).
    pub async fn with_connections(pool: &PgPool, connections: u32) -> Self {
        let database: String = sqlx::query_scalar("select current_database()")
            .fetch_one(pool)
            .await
            .unwrap();
        let options = pool.connect_options();
        let upstream = format!("{}:{}", options.get_host(), options.get_port());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let to_client = tokio::io::copy(&mut server_read, &mut client_write);
                    let to_server = forward_counting(&mut client_read, &mut server_write, &counter);
                    let _ = tokio::join!(to_client, to_server);
                });
            }
        });
        let user = options.get_username().to_owned();
        let url = format!("postgres://{user}@127.0.0.1:{port}/{database}?sslmode=disable");
        // The service's own pool settings, so the count is what production sees.
        let pool = shared::foundation::db::Pool::new(&database_settings(url, connections)).unwrap();
        Self { count, pool }
    }

    /// The round trips of the second of two identical requests (the first warms
    /// the connection and its statement cache), made by an app on this pool.
    pub async fn of_second(
        &self,
        request: impl Fn() -> http::Request<Body>,
    ) -> (usize, http::Response<Body>) {
        let app = App::new(self.pool.clone(), Registry::embedded(), settings(&[]), None).unwrap();
        let first = app.handle(request()).await;
        assert!(first.status().is_success(), "{:?}", first.body());
        self.reset();
        let response = app.handle(request()).await;
        (self.count(), response)
    }

    pub fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn forward_counting(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The startup packet (and an SSL request before it) has no type byte.
    loop {
        let len = from.read_u32().await?;
        let mut payload = vec![0; len as usize - 4];
        from.read_exact(&mut payload).await?;
        to.write_u32(len).await?;
        to.write_all(&payload).await?;
        let code = u32::from_be_bytes(payload[..4].try_into().unwrap());
        if code != 80_877_103 && code != 80_877_104 {
            break;
        }
    }
    loop {
        let kind = from.read_u8().await?;
        let len = from.read_u32().await?;
        let mut payload = vec![0; len as usize - 4];
        from.read_exact(&mut payload).await?;
        if kind == b'Q' || kind == b'S' {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        to.write_u8(kind).await?;
        to.write_u32(len).await?;
        to.write_all(&payload).await?;
    }
}

/// Waits until a backend running a statement that contains `text` is blocked
/// on a lock, and returns its pid.
pub async fn blocked_on_a_lock(pool: &PgPool, text: &str) -> i32 {
    let blocked = eventually(async || {
        sqlx::query_scalar(
            "select pid from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'
               and position($1 in query) > 0 and pid <> pg_backend_pid()",
        )
        .bind(text)
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    if let Some(pid) = blocked {
        return pid;
    }
    let activity: Vec<String> = sqlx::query_scalar(
        "select concat_ws(' | ', state, wait_event_type, wait_event, left(query, 120))
         from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    panic!("no statement containing `{text}` came to wait on a lock: {activity:#?}");
}

/// `probe`'s first `Some`, asked every 50 ms for at most 30 s: for a state
/// another task reaches in its own time.
pub async fn eventually<T>(mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    for _ in 0..600 {
        if let Some(found) = probe().await {
            return Some(found);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}
