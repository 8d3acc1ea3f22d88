//! The real `downloads` binary behind a Lambda Runtime API emulator: it
//! answers in Lambda's streaming mode (what a function URL in
//! `RESPONSE_STREAM` mode relays), a prelude of status and headers, eight
//! NUL bytes, then the record, whatever its size.

use std::time::Duration;

use serde_json::Value;
use shared::foundation::config::ApiSettings;
use shared::http::events::{Placeholders, render};
use shared::registry::Registry;
use sqlx::PgPool;

#[path = "../../../shared/tests/support/lambda_host.rs"]
mod lambda_host;
#[path = "../../../shared/tests/support/runtime_role.rs"]
mod runtime_role;

use lambda_host::{Running, RuntimeApi};

/// The token key pair (`openssl genpkey -algorithm ed25519`): the function is
/// given the public key alone, as the template gives it.
const JWT_PRIVATE_KEY: &str = "MC4CAQAwBQYDK2VwBCIEINfq2LZPJaT2wWw0T3kottfEUayULB8cs36AWetTxGf2";
const JWT_PUBLIC_KEY: &str = "MCowBQYDK2VwAyEAHskKiSXijs1xv+xJDH3X+CruyafvYo3ThT4vBq2a2B8=";

/// Where the prelude of a streamed HTTP answer ends (Lambda's format).
const PRELUDE_END: &[u8] = &[0; 8];

#[sqlx::test(migrations = false)]
async fn a_record_larger_than_a_buffered_answer_is_streamed_by_the_function(pool: PgPool) {
    shared::migrate::run(&mut pool.acquire().await.unwrap(), Registry::embedded())
        .await
        .unwrap();
    let person = shared::identity::users::LmsUser {
        lms_user_id: "64c000000000000000000002".into(),
        email: "download@example.test".into(),
        full_name: "Down Load".into(),
        organization: shared::identity::users::Membership::Unchanged,
    };
    let mut conn = pool.acquire().await.unwrap();
    let person = shared::identity::users::sync(&mut conn, Registry::embedded(), &person, false)
        .await
        .unwrap();
    // Over the 6 MB a buffered Lambda answer may hold.
    let wish = "w".repeat(7_000_000);
    sqlx::query(
        "insert into sprint_00_woop.submissions (user_id, data, status)
         values ($1, jsonb_build_object('wish', $2::text), 'draft')",
    )
    .bind(person.id)
    .bind(&wish)
    .execute(&pool)
    .await
    .unwrap();

    runtime_role::ensure_runtime_login(&pool).await;
    let options = pool.connect_options();
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let url = format!(
        "postgres://{}:{}@{}:{}/{database}",
        runtime_role::RUNTIME_LOGIN,
        runtime_role::RUNTIME_PASSWORD,
        options.get_host(),
        options.get_port()
    );
    let settings = ApiSettings::from_source(&std::collections::HashMap::from([
        ("JWT_SIGNING_KEY", JWT_PRIVATE_KEY),
        ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
    ]))
    .unwrap();
    let (token, _) = shared::sessions::TokenKeys::minting(&settings)
        .unwrap()
        .issue(person.id, jsonwebtoken::get_current_timestamp())
        .unwrap();
    let event = render(
        include_str!("../../../events/download-own.json"),
        &Placeholders {
            token: Some(token),
            ..Placeholders::default()
        },
    );

    let mut runtime = RuntimeApi::start(event).await;
    let running = Running::start(lambda_host::function(
        env!("CARGO_BIN_EXE_downloads"),
        "downloads",
        &runtime.address,
        &[
            ("DATABASE_URL", url.as_str()),
            ("JWT_PUBLIC_KEYS", JWT_PUBLIC_KEY),
        ],
    ));
    let result = tokio::time::timeout(Duration::from_secs(60), runtime.results.recv()).await;
    let logs = running.logs();
    let posted = result.expect("the function answered in time").unwrap();
    assert!(
        posted.path.ends_with("/response"),
        "{}\n{logs}",
        posted.path
    );
    assert_eq!(
        posted.headers["lambda-runtime-function-response-mode"], "streaming",
        "{logs}"
    );
    let split = posted
        .body
        .windows(PRELUDE_END.len())
        .position(|w| w == PRELUDE_END)
        .expect("a prelude");
    let prelude: Value = serde_json::from_slice(&posted.body[..split]).unwrap();
    assert_eq!(prelude["statusCode"], 200, "{prelude}\n{logs}");
    let record = &posted.body[split + PRELUDE_END.len()..];
    assert!(record.len() > 6 * 1024 * 1024, "{} bytes", record.len());
    let record: Value = serde_json::from_slice(record).unwrap();
    assert_eq!(record["user"]["id"], person.id.to_string());
    let woop = record["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tool_slug"] == "woop")
        .unwrap();
    assert_eq!(
        woop["data"]["wish"].as_str().map(str::len),
        Some(wish.len())
    );
}
