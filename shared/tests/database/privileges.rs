//! The runtime role (migrations 0004, 0006 and 0007): the service's login role
//! is a member of `fasttrack_runtime`, which may read every table the API uses,
//! write only what the service writes, and create nothing anywhere. Migrations
//! run as the owner.

use shared::registry::Registry;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

use crate::migrated;
use crate::runtime_role::{ensure_runtime_login, runtime_options};

async fn runtime_pool(owner: &PgPool) -> PgPool {
    migrated(owner).await;
    ensure_runtime_login(owner).await;
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(runtime_options(owner))
        .await
        .expect("the runtime login role connects")
}

/// The SQLSTATE of a statement that must fail.
async fn refused(pool: &PgPool, sql: &str) -> String {
    let error = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .expect_err(sql);
    let code = error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    code.unwrap_or_else(|| panic!("{sql}: not a database error: {error}"))
}

async fn tool_schemas(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select nspname::text from pg_namespace where nspname like 'sprint\\_%' order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_cannot_create_in_any_schema(owner: PgPool) {
    let runtime = runtime_pool(&owner).await;
    let mut schemas = vec!["shared".to_owned(), "public".to_owned()];
    schemas.extend(tool_schemas(&owner).await);
    assert_eq!(schemas.len(), 2 + Registry::embedded().tools().len());
    for schema in &schemas {
        for sql in [
            format!("create table \"{schema}\".probe (id int)"),
            format!("create view \"{schema}\".probe as select 1 as one"),
            format!("create function \"{schema}\".probe() returns int language sql as 'select 1'"),
        ] {
            assert_eq!(refused(&runtime, &sql).await, "42501", "{sql}");
        }
    }
    // Nor a schema of its own, nor a temporary table, nor a tool schema.
    assert_eq!(refused(&runtime, "create schema probe").await, "42501");
    assert_eq!(
        refused(&runtime, "create temporary table probe (id int)").await,
        "42501"
    );
    assert_eq!(
        refused(
            &runtime,
            "select shared.create_tool_schema('sprint_99_probe')"
        )
        .await,
        "42501"
    );
    // No schema at all, the catalogs included, grants it CREATE.
    let creatable: Vec<String> = sqlx::query_scalar(
        "select nspname::text from pg_namespace where has_schema_privilege(oid, 'CREATE')",
    )
    .fetch_all(&runtime)
    .await
    .unwrap();
    assert_eq!(creatable, Vec::<String>::new());
    let (creates_db, creates_role, superuser): (bool, bool, bool) = sqlx::query_as(
        "select has_database_privilege(current_database(), 'CREATE'), rolcreaterole, rolsuper
         from pg_roles where rolname = current_user",
    )
    .fetch_one(&runtime)
    .await
    .unwrap();
    assert!(!creates_db && !creates_role && !superuser);
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_cannot_alter_or_drop_what_migrations_made(owner: PgPool) {
    let runtime = runtime_pool(&owner).await;
    for sql in [
        "alter table shared.users add column probe int",
        "drop table shared.idempotency_keys",
        "drop index shared.idx_user_progress_status",
        "create index probe on shared.users (full_name)",
        "truncate shared.webhook_events",
        "alter table sprint_00_woop.submissions drop column submitted_data",
        "drop table sprint_30_program_overview.field_outputs",
        "drop schema sprint_01_know_thyself cascade",
        "drop function shared.set_updated_at() cascade",
        "select * from public._sqlx_migrations",
    ] {
        assert_eq!(refused(&runtime, sql).await, "42501", "{sql}");
    }
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_reads_and_writes_every_table_the_api_uses(owner: PgPool) {
    let runtime = runtime_pool(&owner).await;
    let mut tx = runtime.begin().await.unwrap();
    let org: uuid::Uuid = sqlx::query_scalar(
        "insert into shared.organizations (name, slug) values ('Org', 'org') returning id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let user: uuid::Uuid = sqlx::query_scalar(
        "insert into shared.users (lms_user_id, email, full_name, organization_id)
         values ('lms-1', 'a@example.test', 'A', $1) returning id",
    )
    .bind(org)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    for sql in [
        "insert into shared.user_progress (user_id, tool_slug) values ($1, 'woop')",
        "update shared.user_progress set status = 'unlocked' where user_id = $1",
        "update shared.users set last_login = now() where id = $1",
        "insert into shared.idempotency_keys (user_id, key, request_sha256) values ($1, 'k', '\\x00')",
        "delete from shared.idempotency_keys where user_id = $1",
        "insert into shared.save_budgets (user_id, tokens, refilled_at) values ($1, 1, now())",
        "update shared.save_budgets set tokens = 0 where user_id = $1",
        "delete from shared.save_budgets where user_id = $1",
        "insert into shared.session_launches (signature_sha256, lms_user_id) values (sha256($1::text::bytea), 'lms-1')",
        "delete from shared.session_launches where lms_user_id = 'lms-1' and $1 is not null",
        "insert into shared.webhook_events (body_sha256, outcome, payload) values (sha256($1::text::bytea), 'ignored', '{}')",
        "select pg_advisory_xact_lock(hashtext($1::text))",
    ] {
        sqlx::query(AssertSqlSafe(sql))
            .bind(user)
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for schema in tool_schemas(&owner).await {
        let submission: uuid::Uuid = sqlx::query_scalar(AssertSqlSafe(format!(
            "insert into \"{schema}\".submissions (user_id, organization_id, data)
             values ($1, $2, '{{}}') returning id"
        )))
        .bind(user)
        .bind(org)
        .fetch_one(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{schema}: {e}"));
        for sql in [
            format!(
                "update \"{schema}\".submissions set status = 'submitted', version = version + 1, submitted_data = data where id = $1"
            ),
            format!(
                "insert into \"{schema}\".field_outputs (submission_id, field_id, field_value) values ($1, 'a.b', '1')"
            ),
            format!(
                "update \"{schema}\".field_outputs set field_value = '2' where submission_id = $1"
            ),
            format!("delete from \"{schema}\".field_outputs where submission_id = $1"),
            format!(
                "select count(*) from \"{schema}\".submissions s join \"{schema}\".field_outputs f on f.submission_id = s.id where s.id = $1"
            ),
        ] {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(submission)
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    tx.commit().await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_cannot_make_an_admin_or_erase_the_webhook_log(owner: PgPool) {
    let runtime = runtime_pool(&owner).await;
    let user: uuid::Uuid = sqlx::query_scalar(
        "insert into shared.users (lms_user_id, email, full_name) values ('lms-1', 'a@example.test', 'A') returning id",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    sqlx::query(
        "insert into shared.webhook_events (body_sha256, outcome, payload) values ('\\x01', 'ignored', '{}')",
    )
    .execute(&owner)
    .await
    .unwrap();
    // Every user and webhook record, as the owner sees them.
    let digest = async || -> String {
        sqlx::query_scalar(
            "select md5(string_agg(t::text, '|' order by t::text)) from (
                 select u::text as t from shared.users u union all select e::text from shared.webhook_events e) s",
        )
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    let before = digest().await;
    for sql in [
        format!("update shared.users set role = 'admin' where id = '{user}'"),
        format!("update shared.users set id = gen_random_uuid() where id = '{user}'"),
        "insert into shared.users (lms_user_id, email, full_name, role) values ('lms-2', 'b@example.test', 'B', 'admin')".to_owned(),
        format!("delete from shared.users where id = '{user}'"),
        "update shared.webhook_events set outcome = 'ignored'".to_owned(),
        "delete from shared.webhook_events".to_owned(),
        "update shared.organizations set name = 'x'".to_owned(),
        "delete from shared.organizations".to_owned(),
        format!("delete from shared.user_progress where user_id = '{user}'"),
        format!("update shared.user_progress set user_id = '{user}'"),
        "delete from shared.webhook_last_deliveries".to_owned(),
        "update shared.session_launches set used_at = now()".to_owned(),
    ] {
        assert_eq!(refused(&runtime, &sql).await, "42501", "{sql}");
    }
    assert_eq!(digest().await, before);
}

#[sqlx::test(migrations = false)]
async fn the_runtime_role_cannot_erase_or_reassign_anyones_work(owner: PgPool) {
    let runtime = runtime_pool(&owner).await;
    let (user, other): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "with u as (insert into shared.users (lms_user_id, email, full_name)
                    values ('lms-1', 'a@example.test', 'A'), ('lms-2', 'b@example.test', 'B') returning id, lms_user_id)
         select (select id from u where lms_user_id = 'lms-1'), (select id from u where lms_user_id = 'lms-2')",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    for schema in tool_schemas(&owner).await {
        sqlx::query(AssertSqlSafe(format!(
            "with s as (insert into \"{schema}\".submissions (user_id, data, status) values ($1, '{{}}', 'submitted') returning id)
             insert into \"{schema}\".field_outputs (submission_id, field_id, field_value) select id, 'a.b', '1' from s"
        )))
        .bind(user)
        .execute(&owner)
        .await
        .unwrap();
    }
    // Every submission and output, as the owner sees them.
    let digest = async || -> String {
        let schemas = tool_schemas(&owner).await;
        let parts: Vec<String> = schemas
            .iter()
            .map(|s| {
                format!(
                    "select s::text as t from \"{s}\".submissions s union all select f::text from \"{s}\".field_outputs f"
                )
            })
            .collect();
        sqlx::query_scalar(AssertSqlSafe(format!(
            "select md5(string_agg(t, '|' order by t)) from ({}) all_rows",
            parts.join(" union all ")
        )))
        .fetch_one(&owner)
        .await
        .unwrap()
    };
    let before = digest().await;
    for schema in tool_schemas(&owner).await {
        for sql in [
            format!("delete from \"{schema}\".submissions"),
            format!("update \"{schema}\".submissions set user_id = '{other}'"),
            format!("update \"{schema}\".submissions set id = gen_random_uuid()"),
            format!("update \"{schema}\".submissions set created_at = now()"),
            format!("update \"{schema}\".field_outputs set submission_id = gen_random_uuid()"),
            format!("update \"{schema}\".field_outputs set field_id = 'x.y'"),
        ] {
            assert_eq!(refused(&runtime, &sql).await, "42501", "{sql}");
        }
    }
    assert_eq!(digest().await, before);
}

#[sqlx::test(migrations = false)]
async fn a_tool_schema_created_later_is_granted_to_the_runtime_role(owner: PgPool) {
    let runtime = runtime_pool(&owner).await;
    // What migrate does for a tool added to the registry after the role existed.
    sqlx::query("drop schema sprint_30_program_overview cascade")
        .execute(&owner)
        .await
        .unwrap();
    let report = migrated(&owner).await;
    assert_eq!(report.created_schemas, ["sprint_30_program_overview"]);
    let rows: i64 =
        sqlx::query_scalar("select count(*) from sprint_30_program_overview.submissions")
            .fetch_one(&runtime)
            .await
            .expect("the new schema's tables are readable by the runtime role");
    assert_eq!(rows, 0);
    for sql in [
        "create table sprint_30_program_overview.probe (id int)",
        "delete from sprint_30_program_overview.submissions",
        "update sprint_30_program_overview.submissions set user_id = gen_random_uuid()",
    ] {
        assert_eq!(refused(&runtime, sql).await, "42501", "{sql}");
    }
}

/// A route function's pool (`Login::Runtime`) connects as a login in
/// `fasttrack_runtime` and refuses the schemas' owner, whose every statement
/// could rewrite anything whatever the grants say.
#[sqlx::test(migrations = false)]
async fn a_route_functions_pool_refuses_the_schemas_owner_and_takes_the_runtime_login(
    owner: PgPool,
) {
    use shared::foundation::db::{Login, OwnerLogin, Pool, TOOL_ACQUIRE_TIMEOUT};
    migrated(&owner).await;
    ensure_runtime_login(&owner).await;
    let as_owner = Pool::with_login(
        owner.connect_options().as_ref().clone(),
        1,
        TOOL_ACQUIRE_TIMEOUT,
        Login::Runtime,
    );
    let refused = as_owner
        .acquire()
        .await
        .err()
        .expect("the owner is refused");
    assert!(OwnerLogin::is(&refused), "{refused}");
    let as_runtime = Pool::with_login(
        runtime_options(&owner),
        1,
        TOOL_ACQUIRE_TIMEOUT,
        Login::Runtime,
    );
    as_runtime
        .acquire()
        .await
        .expect("the runtime login connects")
        .release();
}

/// The recompute job logs in as the route functions do: its pool refuses the
/// schemas' owner, and a whole run (unlocks, expired keys, the retention
/// purges) works as the runtime login.
#[sqlx::test(migrations = false)]
async fn the_recompute_jobs_pool_refuses_the_schemas_owner_and_runs_as_the_runtime_login(
    owner: PgPool,
) {
    use shared::foundation::config::DatabaseSettings;
    use shared::foundation::db::OwnerLogin;
    use shared::startup::{JOB_LOGIN, job_pool};
    use shared::unlocks::recompute;
    use std::collections::HashMap;

    migrated(&owner).await;
    ensure_runtime_login(&owner).await;
    let options = owner.connect_options();
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&owner)
        .await
        .unwrap();
    let place = format!("{}:{}/{database}", options.get_host(), options.get_port());
    let settings =
        |url: &str| DatabaseSettings::from_source(&HashMap::from([("DATABASE_URL", url)])).unwrap();

    let owner_url = format!("postgres://{}@{place}", options.get_username());
    let as_owner = job_pool(&settings(&owner_url), JOB_LOGIN).unwrap();
    let refused = as_owner
        .acquire()
        .await
        .err()
        .expect("the owner is refused");
    assert!(OwnerLogin::is(&refused), "{refused}");
    let refused = recompute::run(&as_owner, Registry::embedded(), 100)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("owns the schemas"),
        "{refused}"
    );

    let runtime = runtime_options(&owner);
    let runtime_url = format!(
        "postgres://{}:{}@{place}",
        runtime.get_username(),
        crate::runtime_role::RUNTIME_PASSWORD
    );
    let as_runtime = job_pool(&settings(&runtime_url), JOB_LOGIN).unwrap();
    let report = recompute::run(&as_runtime, Registry::embedded(), 100)
        .await
        .expect("a whole run works as the runtime login");
    assert_eq!(report.webhook_payloads_expired, 0);
}

/// The migrate function makes the route functions' login from their secret:
/// a member of `fasttrack_runtime` with the secret's password, never the
/// owner itself or a superuser.
#[sqlx::test(migrations = false)]
async fn migrate_makes_the_runtime_login_and_refuses_the_owner_or_a_superuser(owner: PgPool) {
    migrated(&owner).await;
    let mut conn = owner.acquire().await.unwrap();
    let options = owner.connect_options();
    let place = format!("{}:{}", options.get_host(), options.get_port());
    let login = format!("ft_login_{}", uuid::Uuid::new_v4().simple());
    let url = format!("postgres://{login}:s3cr%40t@{place}/app");
    let made = shared::migrate::ensure_runtime_login(&mut conn, &url)
        .await
        .unwrap();
    assert_eq!(made, login);
    let member: bool = sqlx::query_scalar(
        "select pg_has_role(r.oid, 'fasttrack_runtime', 'MEMBER') and r.rolcanlogin and not r.rolsuper
         from pg_roles r where r.rolname = $1",
    )
    .bind(&login)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(member);
    // Again (a rotated password): the same role, still a member.
    shared::migrate::ensure_runtime_login(&mut conn, &url.replace("s3cr%40t", "n3w"))
        .await
        .unwrap();

    let me: String = sqlx::query_scalar("select current_user::text")
        .fetch_one(&owner)
        .await
        .unwrap();
    let superuser = format!("ft_super_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("create role {superuser} superuser")))
        .execute(&owner)
        .await
        .unwrap();
    for refused in [me, superuser.clone()] {
        let error = shared::migrate::ensure_runtime_login(
            &mut conn,
            &format!("postgres://{refused}@{place}/app"),
        )
        .await
        .expect_err(&refused);
        assert!(
            error.to_string().contains("must not be the schemas' owner"),
            "{refused}: {error}"
        );
    }
    drop(conn);
    for role in [login, superuser] {
        sqlx::query(AssertSqlSafe(format!("drop role {role}")))
            .execute(&owner)
            .await
            .unwrap();
    }
}
