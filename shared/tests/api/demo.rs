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

/// `fasttrack demo --members N`: a large organization for the roster, every
/// member distinct (24-character LearnWorlds ids, emails never repeated past
/// the names' combinations), and each member told to the progress bar.
#[sqlx::test(migrations = false)]
async fn a_demo_of_a_large_organization_has_that_many_distinct_members(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let service = shared::foundation::db::Pool::on_same_database(&pool, 2);
    let steps = Counted::default();
    assert!(
        demo::seed_with(&service, app.registry(), 130, &steps)
            .await
            .unwrap()
    );
    let (members, emails, ids, long): (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*), count(distinct u.email), count(distinct u.lms_user_id),
                count(*) filter (where length(u.lms_user_id) <> 24)
         from shared.users u join shared.organizations o on o.id = u.organization_id
         where o.slug = 'riverside' and u.role = 'user'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((members, emails, ids, long), (130, 130, 130, 0));
    // Spread through the curriculum: the last member has submitted every tool,
    // its values of their forms' shapes.
    let (most, completed): (i64, i64) = sqlx::query_as(
        "select max(u.tools_completed)::bigint, sum(u.tools_completed)::bigint
         from shared.users u join shared.organizations o on o.id = u.organization_id
         where o.slug = 'riverside' and u.role = 'user'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(most as usize, app.registry().tools().len());
    assert!(completed > 130, "{completed} tools completed in all");
    assert_eq!(steps.0.get(), (130, 130, true));
}

/// What a progress bar would have been told: (length, steps, ended).
#[derive(Default)]
struct Counted(std::cell::Cell<(u64, u64, bool)>);

impl shared::foundation::steps::Steps for Counted {
    fn begin(&self, _what: &str, total: u64) {
        self.0.set((total, 0, false));
    }
    fn step(&self) {
        let (total, done, ended) = self.0.get();
        self.0.set((total, done + 1, ended));
    }
    fn end(&self) {
        let (total, done, _) = self.0.get();
        self.0.set((total, done, true));
    }
}
