//! The demo data `make run` loads.

use shared::demo::{self, USERS};
use shared::identity::users::{self, LmsUser, Membership};
use sqlx::PgPool;

use crate::TestApp;

/// The admin is the demo's mark of "loaded", so it is written last: a run cut
/// short (here by an email another account holds) is completed by the next
/// run instead of being taken for done.
#[sqlx::test(migrations = false)]
async fn a_demo_load_cut_short_is_completed_by_the_next_run(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let alice = &USERS[2];
    let squatter = LmsUser {
        lms_user_id: "64a0000000000000000000ff".into(),
        email: alice.email.into(),
        full_name: "Someone Else".into(),
        organization: Membership::Unchanged,
    };
    let mut conn = pool.acquire().await.unwrap();
    users::sync(&mut conn, app.registry(), &squatter, false)
        .await
        .unwrap();
    let service = shared::foundation::db::Pool::on_same_database(&pool, 2);
    assert!(demo::seed(&service, app.registry()).await.is_err());

    sqlx::query("delete from shared.users where lms_user_id = $1")
        .bind(&squatter.lms_user_id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(demo::seed(&service, app.registry()).await.unwrap());
    let loaded: i64 =
        sqlx::query_scalar("select count(*) from shared.users where email like '%.fasttrack.test'")
            .fetch_one(&pool)
            .await
            .unwrap();
    // The roster demo's guru and members besides.
    assert_eq!(loaded as usize, USERS.len() + 1 + demo::ROSTER_MEMBERS);
    let woop: String = sqlx::query_scalar(
        "select p.status::text from shared.user_progress p join shared.users u on u.id = p.user_id
         where u.email = $1 and p.tool_slug = 'woop'",
    )
    .bind(alice.email)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(woop, "completed");
    assert!(
        !demo::seed(&service, app.registry()).await.unwrap(),
        "then it is done"
    );
}
