//! The service's connection pool (`shared::foundation::db::Pool`): what it gives back as it
//! is, what it flushes first, and the connection a cold start opens early.

use std::time::{Duration, Instant};

use shared::foundation::db::Pool;
use sqlx::{Connection, PgPool, Row};

async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Gives up on `exchange` before its answer (it must take longer than
/// 50 ms), as a client that hung up or a request timeout would.
async fn give_up_on<T>(exchange: impl std::future::Future<Output = T>) {
    assert!(
        tokio::time::timeout(Duration::from_millis(50), exchange)
            .await
            .is_err(),
        "the exchange answered before it was given up"
    );
}

#[sqlx::test(migrations = false)]
async fn a_released_connection_is_reused_as_it_is(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 4);
    let mut conn = service.acquire().await.unwrap();
    let first = backend_pid(&mut conn).await;
    conn.release();
    let mut conn = service.acquire().await.unwrap();
    assert_eq!(backend_pid(&mut conn).await, first);
    assert_eq!(service.size(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_transaction_abandoned_by_an_error_rolls_back_at_once(pool: PgPool) {
    sqlx::query("create table t (id int primary key, note text)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("insert into t values (1, 'before')")
        .execute(&pool)
        .await
        .unwrap();
    let service = Pool::on_same_database(&pool, 2);
    let result = service
        .transaction(async |tx| {
            sqlx::query("update t set note = 'abandoned' where id = 1")
                .execute(&mut *tx)
                .await?;
            Err::<(), _>(sqlx::Error::RowNotFound)
        })
        .await;
    assert!(result.is_err());

    // The row lock the update took must be gone without anyone reusing the
    // connection: a ROLLBACK left queued in its buffer would keep it.
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("set lock_timeout = '3s'")
        .execute(&mut *other)
        .await
        .unwrap();
    let note: String = sqlx::query_scalar("select note from t where id = 1 for update")
        .fetch_one(&mut *other)
        .await
        .expect("the abandoned transaction no longer holds the row");
    assert_eq!(note, "before");
}

/// On Lambda the environment freezes once the answer is out, and a task
/// spawned to flush the connection may not have run by then: a failed
/// transaction must be rolled back, and its connection idle again, by the time
/// the call returns. The test runtime has one thread, so nothing spawned runs
/// between the call's return and the check.
#[sqlx::test(migrations = false)]
async fn a_failed_transaction_is_over_and_its_connection_idle_when_the_call_returns(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 2);
    let result = service
        .transaction(async |tx| {
            sqlx::query("select 1").execute(&mut *tx).await?;
            Err::<(), _>(sqlx::Error::RowNotFound)
        })
        .await;
    assert!(matches!(result, Err(sqlx::Error::RowNotFound)));
    assert_eq!((service.size(), service.idle()), (1, 1));

    let mut conn = service.acquire().await.unwrap();
    let pid = backend_pid(&mut conn).await;
    conn.release();
    let state: String = sqlx::query_scalar("select state from pg_stat_activity where pid = $1")
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "idle");
}

/// sqlx queues no ROLLBACK for a `begin()` given up after its BEGIN went out
/// (a client that hung up, a request timeout): the server would stay in that
/// transaction, and the connection's next user would run inside it (and hold
/// its snapshot, or pin a pooler's server) until someone's COMMIT. The load
/// harness's server logs showed it as "there is already a transaction in
/// progress" at the end of a wrk run.
#[sqlx::test(migrations = false)]
async fn a_connection_given_up_inside_its_begin_comes_back_outside_any_transaction(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 1);
    let mut conn = service.acquire().await.unwrap();
    // The BEGIN reaches the server, which answers late; the caller gives up
    // before the answer.
    give_up_on(Connection::begin_with(
        &mut *conn,
        "begin; select pg_sleep(0.3)",
    ))
    .await;
    drop(conn);

    let mut conn = service.acquire().await.unwrap();
    // A statement sent alone (the simple protocol) outside a transaction is
    // its own transaction, and sees its start as `now()`; a statement inside an
    // older transaction does not.
    let fresh: bool = sqlx::raw_sql("select now() = statement_timestamp()")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
        .get(0);
    assert!(fresh, "the connection came back inside the abandoned BEGIN");
    conn.release();
}

#[sqlx::test(migrations = false)]
async fn a_connection_given_up_mid_statement_answers_its_next_user_correctly(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 1);
    let mut conn = service.acquire().await.unwrap();
    give_up_on(sqlx::query_scalar::<_, i32>("select 7 from pg_sleep(0.3)").fetch_one(&mut *conn))
        .await;
    drop(conn);
    // The one connection is flushed (the slow answer read and discarded) before
    // this acquire gets it back.
    let mut conn = service.acquire().await.unwrap();
    let value: i32 = sqlx::query_scalar("select 42")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(value, 42);
    assert!(conn.ping().await.is_ok());
}

#[sqlx::test(migrations = false)]
async fn the_first_acquire_takes_the_connection_opened_early(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 2);
    service.connect_early(1).await;
    let mut conn = service.acquire().await.unwrap();
    backend_pid(&mut conn).await;
    // One connection, not the early one plus another opened beside it.
    assert_eq!(service.size(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_cold_start_ends_with_its_early_connection_idle_in_the_pool(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 2);
    service.connect_early(1).await;
    service.finish_connecting().await.unwrap();
    assert_eq!(service.size(), 1);
    let mut conn = service.acquire().await.unwrap();
    backend_pid(&mut conn).await;
    assert_eq!(
        service.size(),
        1,
        "the first request used the early connection"
    );
}

#[sqlx::test(migrations = false)]
async fn a_cold_start_can_open_two_connections_side_by_side(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 2);
    service.connect_early(2).await;
    service.finish_connecting().await.unwrap();
    assert_eq!(service.size(), 2);
    let mut first = service.acquire().await.unwrap();
    let mut second = service.acquire().await.unwrap();
    backend_pid(&mut first).await;
    backend_pid(&mut second).await;
    assert_eq!(service.size(), 2, "both came from the cold start");
}

#[sqlx::test(migrations = false)]
async fn acquires_made_while_connections_open_early_take_one_each(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 2);
    service.connect_early(2).await;
    let (first, second) = tokio::join!(service.acquire(), service.acquire());
    let (mut first, mut second) = (first.unwrap(), second.unwrap());
    backend_pid(&mut first).await;
    backend_pid(&mut second).await;
    // Neither opened a third beside the two early ones (the pool holds two).
    assert_eq!(service.size(), 2);
    first.release();
    second.release();
    service.finish_connecting().await.unwrap();
    assert_eq!(service.size(), 2);
}

#[sqlx::test(migrations = false)]
async fn early_connections_never_exceed_the_pool_size(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 1);
    service.connect_early(3).await;
    let mut conn = service.acquire().await.unwrap();
    backend_pid(&mut conn).await;
    conn.release();
    service.finish_connecting().await.unwrap();
    assert_eq!(service.size(), 1);
}

#[tokio::test]
async fn an_early_connection_that_failed_leaves_the_first_acquire_to_try_again() {
    // Nothing listens on port 1: every attempt is refused, and retried until
    // the acquire timeout.
    let service = Pool::with_options(
        "postgres://x@127.0.0.1:1/x".parse().unwrap(),
        2,
        Duration::from_millis(500),
    );
    service.connect_early(1).await;
    service.finish_connecting().await.unwrap();
    assert_eq!(service.size(), 0);
    let started = Instant::now();
    let error = match service.acquire().await {
        Ok(_) => panic!("nothing listens on port 1"),
        Err(error) => error,
    };
    assert!(shared::foundation::error::is_unavailable(&error), "{error}");
    // The error says why, not only that time ran out.
    assert!(
        error.to_string().to_lowercase().contains("refused"),
        "{error}"
    );
    // Refused at once each time, it kept trying, backing off, into its 500 ms
    // timeout (it stops when the next wait would pass it).
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "gave up after {waited:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_connection_refused_for_a_moment_is_retried_until_it_succeeds(pool: PgPool) {
    // A listener that appears 300 ms after the first attempt, forwarding to the
    // test's server: the pool waits it out within its acquire timeout.
    let options = pool.connect_options();
    let upstream = format!("{}:{}", options.get_host(), options.get_port());
    // Below Linux's ephemeral range (32768 and up), so no connection of a test
    // running beside this one can take it as its local port meanwhile.
    let port = (20_000 + std::process::id() % 10_000..32_000)
        .map(|p| p as u16)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below the ephemeral range");
    let opened = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut client, _) = listener.accept().await.unwrap();
        let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    let service = Pool::with_options(
        (*options).clone().host("127.0.0.1").port(port),
        1,
        Duration::from_secs(5),
    );
    let started = Instant::now();
    let mut conn = service
        .acquire()
        .await
        .expect("the server came back within the timeout");
    assert!(started.elapsed() >= Duration::from_millis(250));
    backend_pid(&mut conn).await;
    drop(conn);
    opened.abort();
}

/// A pool on `url` in session mode, following `current` when its login is
/// refused; counts how often it read the URL again.
fn following(
    url: &str,
    current: &std::sync::Arc<std::sync::Mutex<String>>,
    reads: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Pool {
    let settings = shared::foundation::config::DatabaseSettings {
        url: shared::foundation::config::Secret::new(url.to_owned()),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::ZERO,
        pooler_mode: shared::foundation::config::PoolerMode::Session,
    };
    let (current, reads) = (current.clone(), reads.clone());
    let read_url: shared::foundation::db::ReadUrl = std::sync::Arc::new(move || {
        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let url = current.lock().unwrap().clone();
        Box::pin(async move { Some(url) })
    });
    Pool::following(
        &settings,
        Some(read_url),
        shared::foundation::db::Login::Any,
    )
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn credentials_rotated_while_warm_are_read_again_once_the_database_refuses_them(
    pool: PgPool,
) {
    // Alternating-users rotation: the secret moves from one login role to
    // another, and the first may no longer log in.
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let (before, after) = (
        format!("rotation_{suffix}_a"),
        format!("rotation_{suffix}_b"),
    );
    for role in [&before, &after] {
        sqlx::query(sqlx::AssertSqlSafe(format!("create role {role} login")))
            .execute(&pool)
            .await
            .unwrap();
    }
    let base = crate::url_of(&pool).await;
    let url_of_role = |role: &str| {
        let (scheme, rest) = base.split_once("://").unwrap();
        let host_and_path = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
        format!("{scheme}://{role}@{host_and_path}")
    };
    let current = std::sync::Arc::new(std::sync::Mutex::new(url_of_role(&before)));
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let service = following(&url_of_role(&before), &current, &reads);
    let who = async |conn: &mut sqlx::PgConnection| -> String {
        sqlx::query_scalar("select current_user::text")
            .fetch_one(conn)
            .await
            .unwrap()
    };
    let mut first = service.acquire().await.unwrap();
    assert_eq!(who(&mut first).await, before);

    *current.lock().unwrap() = url_of_role(&after);
    sqlx::query(sqlx::AssertSqlSafe(format!("alter role {before} nologin")))
        .execute(&pool)
        .await
        .unwrap();
    // A second connection, opened after the rotation: refused as `before`,
    // then opened as `after`, which the pool keeps for later connections.
    let mut second = service.acquire().await.unwrap();
    assert_eq!(who(&mut second).await, after);
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    second.release();
    first.release();
    service.close().await;

    // Without a way to read the URL again, the refusal is the answer.
    let stuck = Pool::with_options(
        url_of_role(&before).parse().unwrap(),
        1,
        Duration::from_secs(2),
    );
    let refused = stuck.acquire().await.err().expect("refused");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("28000")
    );
    for role in [&before, &after] {
        sqlx::query(sqlx::AssertSqlSafe(format!("drop role {role}")))
            .execute(&pool)
            .await
            .unwrap();
    }
}

/// "No limit" (migrate's zero) is sent as such, so a limit set on the role or
/// the database for the routes never cuts a migration short.
#[sqlx::test(migrations = false)]
async fn a_zero_statement_timeout_overrides_a_limit_set_on_the_database(pool: PgPool) {
    sqlx::raw_sql(
        "do $$ begin
           execute format('alter database %I set statement_timeout = %L', current_database(), '1s');
           execute format('alter database %I set lock_timeout = %L', current_database(), '1s');
         end $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    let url = {
        let options = pool.connect_options();
        format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap()
        )
    };
    let settings = |ms: u64| shared::foundation::config::DatabaseSettings {
        url: shared::foundation::config::Secret::new(url.clone()),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_millis(ms),
        pooler_mode: shared::foundation::config::PoolerMode::Session,
    };
    let show = async |ms: u64| -> (String, String) {
        let service = Pool::new(&settings(ms)).unwrap();
        let mut conn = service.acquire().await.unwrap();
        sqlx::query_as(
            "select current_setting('statement_timeout'), current_setting('lock_timeout')",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap()
    };
    assert_eq!(show(0).await, ("0".to_owned(), "0".to_owned()));
    assert_eq!(show(7000).await, ("7s".to_owned(), "7s".to_owned()));
}

/// A statement left running by a request that gave up is cancelled, and only
/// it: another session's statement runs to its end.
#[sqlx::test(migrations = false)]
async fn cancelling_an_abandoned_statement_touches_no_other_session(pool: PgPool) {
    let service = Pool::on_same_database(&pool, 1);
    let mut bystander = pool.acquire().await.unwrap();
    let bystander = tokio::spawn(async move {
        sqlx::query("select pg_sleep(0.5)")
            .execute(&mut *bystander)
            .await
            .map(|_| ())
    });
    let mut conn = service.acquire().await.unwrap();
    give_up_on(sqlx::query("select pg_sleep(30)").execute(&mut *conn)).await;
    drop(conn);
    let started = Instant::now();
    service.quiesce().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the abandoned statement was not cancelled"
    );
    assert!(
        bystander.await.unwrap().is_ok(),
        "another session's statement was cancelled"
    );
    // The connection came back at rest.
    let mut conn = service.acquire().await.unwrap();
    let value: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(value, 1);
    conn.release();
}
