//! Staff reports: organizations, the roster (JSON pages and CSV), funnels and
//! the admins' user search. Each page is one statement that also writes its
//! audit row; a guru of another organization learns nothing.

use std::collections::HashSet;

use http::Method;
use serde_json::Value;
use shared::progress::Status;
use shared::registry::Registry;
use shared::unlocks::recompute;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{RoundTripCounter, TestApp, TestUser};

struct Cast {
    ana: TestUser,
    ben: TestUser,
    cleo: TestUser,
    guru: TestUser,
    outside_guru: TestUser,
    admin: TestUser,
    acme: Uuid,
    globex: Uuid,
}

async fn organization(app: &TestApp, slug: &str) -> Uuid {
    sqlx::query_scalar("select id from shared.organizations where slug = $1")
        .bind(slug)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Acme: Ana (submitted woop), Ben, Cleo and their guru; Globex: another
/// guru and the admin.
async fn cast(app: &TestApp) -> Cast {
    let ana = app.user("ana", Some("acme"), "user").await;
    let ben = app.user("ben", Some("acme"), "user").await;
    let cleo = app.user("cleo", Some("acme"), "user").await;
    let guru = app.user("guru", Some("acme"), "guru").await;
    let outside_guru = app.user("outside", Some("globex"), "guru").await;
    let admin = app.user("admin", Some("globex"), "admin").await;
    let saved = app.submit_complete(&ana, "woop").await;
    assert!((200..300).contains(&saved.status), "{:?}", saved.body);
    let acme = organization(app, "acme").await;
    let globex = organization(app, "globex").await;
    Cast {
        ana,
        ben,
        cleo,
        guru,
        outside_guru,
        admin,
        acme,
        globex,
    }
}

/// A GET whose answer may be CSV: (status, content type, body text).
async fn get_raw(app: &TestApp, path: &str, token: &str, accept: &str) -> (u16, String, String) {
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("accept", accept)
        .body(lambda_http::Body::Empty)
        .unwrap();
    let response = app.app.handle(request).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = String::from_utf8(response.body().to_vec()).unwrap();
    (status, content_type, body)
}

/// (action, actor, subjects, organization) of every audit row, oldest first.
async fn log(app: &TestApp) -> Vec<(String, Option<Uuid>, Vec<Uuid>, Option<Uuid>)> {
    sqlx::query_as(
        "select action::text, actor_id, subjects, organization_id from shared.audit_log order by id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

fn ids(page: &Value) -> Vec<Uuid> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect()
}

/// What the roster should say of `user`'s tools, read from the database.
async fn expected_statuses(app: &TestApp, user: Uuid) -> String {
    let mut out = String::new();
    for tool in Registry::embedded().tools() {
        let status: Option<String> = sqlx::query_scalar(
            "select status::text from shared.user_progress where user_id = $1 and tool_slug = $2",
        )
        .bind(user)
        .bind(&tool.slug)
        .fetch_optional(&app.pool)
        .await
        .unwrap();
        let status = status
            .and_then(|s| Status::parse(&s))
            .unwrap_or(Status::initial(tool));
        out.push(shared::reports::status_code(status));
    }
    out
}

fn member(page: &Value, id: Uuid) -> &Value {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.to_string())
        .unwrap_or_else(|| panic!("{id} not on the page: {page}"))
}

#[sqlx::test(migrations = false)]
async fn a_roster_page_shows_each_member_with_every_tool_status_in_registry_order(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let page = app
        .get(&format!("/organizations/{}/members", c.acme), &c.guru.token)
        .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let registry = Registry::embedded();
    let slugs: Vec<&str> = registry.tools().iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(page.body["tools"], serde_json::json!(slugs));
    assert_eq!(names(&page.body), ["ana", "ben", "cleo", "guru"]);
    assert_eq!(page.body["next_cursor"], Value::Null);
    for user in [&c.ana, &c.ben, &c.guru] {
        let row = member(&page.body, user.id);
        let statuses = row["statuses"].as_str().unwrap();
        assert_eq!(statuses.len(), registry.tools().len());
        assert_eq!(statuses, expected_statuses(&app, user.id).await);
    }
    let ana = member(&page.body, c.ana.id);
    let woop = registry.position("woop").unwrap();
    assert_eq!(&ana["statuses"].as_str().unwrap()[woop..=woop], "C");
    assert_eq!(ana["completed"], 1);
    assert_eq!(ana["progress_percent"], 100 / registry.tools().len());
    assert_eq!(ana["email"], "ana@example.test");
    assert!(ana["last_activity_at"].is_string());
    let ben = member(&page.body, c.ben.id);
    assert_eq!(ben["completed"], 0);
    assert_eq!(ben["last_activity_at"], Value::Null);
    // The current tool: the first open or in-progress tool in registry order.
    let first_open = ben["statuses"]
        .as_str()
        .unwrap()
        .chars()
        .position(|c| c == 'U' || c == 'P')
        .map(|i| slugs[i]);
    assert_eq!(ben["current_tool"].as_str(), first_open);
    // An admin reads it too.
    let as_admin = app
        .get(
            &format!("/organizations/{}/members", c.acme),
            &c.admin.token,
        )
        .await;
    assert_eq!(as_admin.status, 200);
    assert_eq!(ids(&as_admin.body), ids(&page.body));
}

#[sqlx::test(migrations = false)]
async fn each_roster_filter_keeps_only_the_members_it_names(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let base = format!("/organizations/{}/members", c.acme);
    let get = async |query: &str| {
        let page = app.get(&format!("{base}?{query}"), &c.guru.token).await;
        assert_eq!(page.status, 200, "{query}: {:?}", page.body);
        names(&page.body)
    };
    assert_eq!(get("tool=woop&status=completed").await, ["ana"]);
    assert_eq!(
        get("tool=woop&status=not_completed").await,
        ["ben", "cleo", "guru"]
    );
    assert!(get("tool=woop&status=in_progress").await.is_empty());
    // Ben saved a draft of woop: in progress.
    let draft = app
        .save(&c.ben, "woop", serde_json::json!({}), "draft")
        .await;
    assert!((200..300).contains(&draft.status), "{:?}", draft.body);
    assert_eq!(get("tool=woop&status=in_progress").await, ["ben"]);
    // Stuck: no activity for 10 days (or, never active, joined that long ago).
    sqlx::query(
        "update shared.users set last_activity_at = now() - interval '20 days' where id = $1",
    )
    .bind(c.ana.id)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("update shared.users set created_at = now() - interval '30 days' where id = $1")
        .bind(c.cleo.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(get("stuck_days=10").await, ["ana", "cleo"]);
    assert_eq!(get("stuck_days=25").await, ["cleo"]);
    // A name or email prefix, whatever its case.
    assert_eq!(get("q=AN").await, ["ana"]);
    assert_eq!(get("q=cleo%40EXAMPLE").await, ["cleo"]);
    assert!(get("q=%25").await.is_empty());
    // Filters combine.
    assert_eq!(get("tool=woop&status=not_completed&q=b").await, ["ben"]);
}

#[sqlx::test(migrations = false)]
async fn the_roster_sorts_by_name_last_activity_or_progress_either_way(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    app.submit_complete(&c.ben, "woop").await;
    app.submit_complete(&c.ben, "know-thyself").await;
    let base = format!("/organizations/{}/members", c.acme);
    let get = async |query: &str| {
        let page = app.get(&format!("{base}?{query}"), &c.guru.token).await;
        assert_eq!(page.status, 200, "{query}: {:?}", page.body);
        names(&page.body)
    };
    assert_eq!(get("sort=name").await, ["ana", "ben", "cleo", "guru"]);
    assert_eq!(
        get("sort=name&order=desc").await,
        ["guru", "cleo", "ben", "ana"]
    );
    let by_progress = get("sort=progress&order=desc").await;
    assert_eq!(by_progress[..2], ["ben", "ana"]);
    let by_activity = get("sort=last_activity&order=desc").await;
    assert_eq!(by_activity[..2], ["ben", "ana"]);
    // Never active sorts before everyone, ascending.
    let ascending = get("sort=last_activity").await;
    assert_eq!(ascending[2..], ["ana", "ben"]);
}

#[sqlx::test(migrations = false)]
async fn roster_pages_follow_one_another_without_duplicates_or_gaps(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    for i in 0..7 {
        let user = app.user(&format!("member{i}"), Some("acme"), "user").await;
        if i % 2 == 0 {
            app.submit_complete(&user, "woop").await;
        }
    }
    let all: HashSet<Uuid> =
        sqlx::query_scalar("select id from shared.users where organization_id = $1")
            .bind(c.acme)
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(all.len(), 11);
    for order in [
        "sort=name",
        "sort=name&order=desc",
        "sort=progress",
        "sort=progress&order=desc",
        "sort=last_activity",
        "sort=last_activity&order=desc",
    ] {
        let full = app
            .get(
                &format!("/organizations/{}/members?{order}&limit=200", c.acme),
                &c.guru.token,
            )
            .await;
        let whole = ids(&full.body);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/organizations/{}/members?{order}&limit=3", c.acme);
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = app.get(&path, &c.guru.token).await;
            assert_eq!(page.status, 200, "{path}: {:?}", page.body);
            assert!(page.body["items"].as_array().unwrap().len() <= 3);
            seen.extend(ids(&page.body));
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, whole, "{order}");
        assert_eq!(seen.iter().copied().collect::<HashSet<_>>(), all, "{order}");
    }
    // A cursor of another order is refused.
    let page = app
        .get(
            &format!("/organizations/{}/members?sort=name&limit=2", c.acme),
            &c.guru.token,
        )
        .await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let other = app
        .get(
            &format!(
                "/organizations/{}/members?sort=progress&limit=2&cursor={cursor}",
                c.acme
            ),
            &c.guru.token,
        )
        .await;
    assert_eq!((other.status, other.code()), (400, "invalid_cursor"));
}

#[sqlx::test(migrations = false)]
async fn a_roster_page_is_one_round_trip_that_audits_the_members_it_shows(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let c = cast(&app).await;
    let counter = RoundTripCounter::new(&pool).await;
    let token = c.guru.token.clone();
    let path = format!("/organizations/{}/members?limit=2&sort=name", c.acme);
    let before = log(&app).await.len();
    let (trips, response) = counter
        .of_second(|| {
            http::Request::builder()
                .uri(&path)
                .header("authorization", format!("Bearer {token}"))
                .body(lambda_http::Body::Empty)
                .unwrap()
        })
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(trips, if crate::behind_pooler() { 4 } else { 1 });
    let page: Value = serde_json::from_slice(response.body()).unwrap();
    let rows = log(&app).await;
    // The warm-up request and the counted one each wrote one row.
    assert_eq!(rows.len(), before + 2);
    let (action, actor, subjects, organization) = rows.last().unwrap();
    assert_eq!(action, "read.roster");
    assert_eq!(*actor, Some(c.guru.id));
    assert_eq!(*organization, Some(c.acme));
    assert_eq!(*subjects, ids(&page));
    assert_eq!(subjects.len(), 2);
    assert_eq!(*subjects, vec![c.ana.id, c.ben.id]);
}

#[sqlx::test(migrations = false)]
async fn nobody_but_the_organizations_gurus_and_admins_reads_its_roster(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let before = log(&app).await.len();
    for (who, path) in [
        (
            &c.outside_guru,
            format!("/organizations/{}/members", c.acme),
        ),
        (&c.ana, format!("/organizations/{}/members", c.acme)),
        (&c.guru, format!("/organizations/{}/members", c.globex)),
        (
            &c.admin,
            format!("/organizations/{}/members", Uuid::new_v4()),
        ),
        (&c.outside_guru, format!("/organizations/{}/funnel", c.acme)),
        (&c.ana, format!("/organizations/{}/funnel", c.acme)),
    ] {
        let response = app.get(&path, &who.token).await;
        assert_eq!(
            (response.status, response.code()),
            (404, "organization_not_found"),
            "{path} as {}",
            who.lms_user_id
        );
        let (status, _, body) = get_raw(&app, &path, &who.token, "text/csv").await;
        assert_eq!(status, 404, "{path} as CSV");
        assert!(!body.contains("ana@example.test"));
    }
    assert_eq!(
        log(&app).await.len(),
        before,
        "a refused read writes nothing"
    );
}

#[sqlx::test(migrations = false)]
async fn the_csv_roster_is_the_whole_organization_quoted_neutralised_and_audited(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    for (user, name) in [
        (&c.ben, "=HYPERLINK(\"http://x\"),\"Ben\""),
        (&c.cleo, "@cleo\r\nline two"),
    ] {
        sqlx::query("update shared.users set full_name = $2 where id = $1")
            .bind(user.id)
            .bind(name)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let before = log(&app).await.len();
    // `limit` does not cut the CSV: it is the whole roster.
    let (status, content_type, body) = get_raw(
        &app,
        &format!("/organizations/{}/members?limit=1", c.acme),
        &c.guru.token,
        "text/csv",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(body.ends_with("\r\n"));
    let registry = Registry::embedded();
    let header = body.split("\r\n").next().unwrap();
    let mut expected = vec![
        "id",
        "name",
        "email",
        "role",
        "progress_percent",
        "completed",
        "current_tool",
        "last_activity_at",
        "last_login_at",
    ];
    expected.extend(registry.tools().iter().map(|t| t.slug.as_str()));
    assert_eq!(header, expected.join(","));
    // The formula is neutralised, and quoted for its comma and quotes.
    assert!(
        body.contains(",\"'=HYPERLINK(\"\"http://x\"\"),\"\"Ben\"\"\",ben@example.test,"),
        "{body}"
    );
    // A CR LF inside a field is quoted, and the `@` neutralised.
    assert!(
        body.contains(",\"'@cleo\r\nline two\",cleo@example.test,"),
        "{body}"
    );
    // Ana's woop column says completed.
    let ana_line = body
        .split("\r\n")
        .find(|l| l.starts_with(&c.ana.id.to_string()))
        .unwrap();
    let woop = registry.position("woop").unwrap();
    assert_eq!(ana_line.split(',').nth(9 + woop), Some("completed"));
    // Every member is there: four records besides the header (one spans two lines).
    for user in [&c.ana, &c.ben, &c.cleo, &c.guru] {
        assert!(body.contains(&user.id.to_string()));
    }
    let rows = log(&app).await;
    assert_eq!(rows.len(), before + 1);
    let (action, actor, subjects, organization) = rows.last().unwrap();
    assert_eq!(action, "read.roster_csv");
    assert_eq!(*actor, Some(c.guru.id));
    assert_eq!(*organization, Some(c.acme));
    let subjects: HashSet<Uuid> = subjects.iter().copied().collect();
    assert_eq!(
        subjects,
        HashSet::from([c.ana.id, c.ben.id, c.cleo.id, c.guru.id])
    );
}

#[sqlx::test(migrations = false)]
async fn the_funnel_counts_each_tools_members_by_status(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    app.save(&c.ben, "woop", serde_json::json!({}), "draft")
        .await;
    let funnel = app
        .get(&format!("/organizations/{}/funnel", c.acme), &c.guru.token)
        .await;
    assert_eq!(funnel.status, 200, "{:?}", funnel.body);
    assert_eq!(funnel.body["members"], 4);
    let registry = Registry::embedded();
    let tools = funnel.body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), registry.tools().len());
    for (tool, counts) in registry.tools().iter().zip(tools) {
        assert_eq!(counts["slug"], tool.slug.as_str());
        let mut expected = [0; 4];
        for user in [&c.ana, &c.ben, &c.cleo, &c.guru] {
            let statuses = expected_statuses(&app, user.id).await;
            let i = registry.position(&tool.slug).unwrap();
            let slot = "LUPC".find(statuses.chars().nth(i).unwrap()).unwrap();
            expected[slot] += 1;
        }
        assert_eq!(
            [
                &counts["locked"],
                &counts["unlocked"],
                &counts["in_progress"],
                &counts["completed"]
            ],
            expected.map(Value::from).each_ref(),
            "{}",
            tool.slug
        );
    }
    let woop = &tools[registry.position("woop").unwrap()];
    assert_eq!(
        (woop["completed"].as_i64(), woop["in_progress"].as_i64()),
        (Some(1), Some(1))
    );
    let rows = log(&app).await;
    let (action, actor, _, organization) = rows.last().unwrap();
    assert_eq!(
        (action.as_str(), *actor, *organization),
        ("read.funnel", Some(c.guru.id), Some(c.acme))
    );
    // Everyone's funnel: admins only.
    let all = app.get("/funnel", &c.admin.token).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["members"], 6);
    assert_eq!(all.body["organization_id"], Value::Null);
    for who in [&c.guru, &c.ana] {
        let refused = app.get("/funnel", &who.token).await;
        assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    }
}

#[sqlx::test(migrations = false)]
async fn organizations_are_listed_with_their_completion_for_staff_only(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let all = app.get("/organizations", &c.admin.token).await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    let items = all.body["items"].as_array().unwrap();
    let slugs: Vec<&str> = items.iter().map(|o| o["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["acme", "globex"]);
    assert_eq!(items[0]["members"], 4);
    assert_eq!(items[0]["tools_completed"], 1);
    assert_eq!(items[0]["members_finished"], 0);
    let own = app.get("/organizations", &c.guru.token).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(own.body["items"][0]["id"], c.acme.to_string());
    let paged = app.get("/organizations?limit=1", &c.admin.token).await;
    let cursor = paged.body["next_cursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/organizations?limit=1&cursor={cursor}"),
            &c.admin.token,
        )
        .await;
    assert_eq!(next.body["items"][0]["slug"], "globex");
    assert_eq!(next.body["next_cursor"], Value::Null);
    let refused = app.get("/organizations", &c.ana.token).await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    // A guru of no organization sees none, and no roster.
    let lone = app.user("lone", None, "guru").await;
    let none = app.get("/organizations", &lone.token).await;
    assert_eq!(none.status, 200);
    assert_eq!(none.body["items"], serde_json::json!([]));
    let roster = app
        .get(&format!("/organizations/{}/members", c.acme), &lone.token)
        .await;
    assert_eq!(roster.status, 404);
}

#[sqlx::test(migrations = false)]
async fn an_admin_finds_users_by_a_case_insensitive_literal_prefix(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let anabel = app.user("anabel", None, "user").await;
    let odd = app.user("a_b", None, "user").await;
    let search = async |q: &str| {
        let page = app.get(&format!("/users?q={q}"), &c.admin.token).await;
        assert_eq!(page.status, 200, "{q}: {:?}", page.body);
        names(&page.body)
    };
    assert_eq!(search("AN").await, ["ana", "anabel"]);
    assert_eq!(search("anab").await, ["anabel"]);
    assert_eq!(search("ANABEL%40EXAMPLE").await, ["anabel"]);
    // `%` and `_` are themselves, not wildcards.
    assert!(search("a%25").await.is_empty());
    assert_eq!(search("a_").await, ["a_b"]);
    assert!(search("__").await.is_empty());
    // Pages, and the audit row names the people shown.
    let first = app.get("/users?q=a&limit=1", &c.admin.token).await;
    assert_eq!(ids(&first.body), [odd.id]);
    let (action, actor, subjects, _) = log(&app).await.pop().unwrap();
    assert_eq!(
        (action.as_str(), actor, subjects),
        ("read.profile", Some(c.admin.id), vec![odd.id])
    );
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(
            &format!("/users?q=a&limit=5&cursor={cursor}"),
            &c.admin.token,
        )
        .await;
    assert_eq!(names(&rest.body), ["admin", "ana", "anabel"]);
    assert_eq!(ids(&rest.body)[2], anabel.id);
    for who in [&c.guru, &c.ana] {
        let refused = app.get("/users?q=a", &who.token).await;
        assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    }
}

#[sqlx::test(migrations = false)]
async fn bad_report_input_is_a_400_and_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let roster = format!("/organizations/{}/members", c.acme);
    let long = "a".repeat(101);
    let before = log(&app).await.len();
    for (path, code) in [
        (format!("{roster}?q={long}"), "invalid_prefix"),
        (format!("{roster}?q=a%00b"), "invalid_prefix"),
        (format!("{roster}?q="), "invalid_prefix"),
        (format!("{roster}?cursor=not-a-cursor"), "invalid_cursor"),
        (format!("{roster}?limit=201"), "invalid_limit"),
        (format!("{roster}?limit=0"), "invalid_limit"),
        (
            format!("{roster}?tool=no-such-tool&status=completed"),
            "invalid_filter",
        ),
        (
            format!("{roster}?tool=woop&status=finished"),
            "invalid_filter",
        ),
        (format!("{roster}?tool=woop"), "invalid_filter"),
        (format!("{roster}?status=completed"), "invalid_filter"),
        (format!("{roster}?sort=age"), "invalid_filter"),
        (format!("{roster}?order=up"), "invalid_filter"),
        (format!("{roster}?stuck_days=0"), "invalid_filter"),
        (format!("{roster}?stuck_days=many"), "invalid_filter"),
        (format!("{roster}?colour=blue"), "unknown_parameter"),
        (format!("/users?q={long}"), "invalid_prefix"),
        ("/users?q=a%00".to_owned(), "invalid_prefix"),
        ("/users?cursor=bm90LWpzb24".to_owned(), "invalid_cursor"),
        ("/users?limit=500".to_owned(), "invalid_limit"),
        ("/organizations?cursor=xyz".to_owned(), "invalid_cursor"),
        ("/organizations?limit=201".to_owned(), "invalid_limit"),
        ("/funnel?x=1".to_owned(), "unknown_parameter"),
    ] {
        let response = app.get(&path, &c.admin.token).await;
        assert_eq!(
            (response.status, response.code()),
            (400, code),
            "{path}: {:?}",
            response.body
        );
    }
    let bad_id = app
        .get("/organizations/not-a-uuid/members", &c.admin.token)
        .await;
    assert_eq!(bad_id.status, 400);
    assert_eq!(log(&app).await.len(), before);
}

#[sqlx::test(migrations = false)]
async fn a_roster_read_that_cannot_be_audited_fails_and_shows_nobody(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    // The log refuses the reports' rows, as a full disk or a lost grant would.
    sqlx::query(
        "alter table shared.audit_log add constraint no_reports
         check (action not in ('read.roster', 'read.roster_csv', 'read.funnel', 'read.profile'))",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    for path in [
        format!("/organizations/{}/members", c.acme),
        format!("/organizations/{}/funnel", c.acme),
        "/users?q=a".to_owned(),
    ] {
        let response = app.get(&path, &c.admin.token).await;
        assert_eq!(response.status, 500, "{path}: {:?}", response.body);
        assert!(!response.body.to_string().contains("ana@example.test"));
    }
    let (status, _, body) = get_raw(
        &app,
        &format!("/organizations/{}/members", c.acme),
        &c.guru.token,
        "text/csv",
    )
    .await;
    assert_eq!(status, 500);
    assert!(!body.contains("ana@example.test"));
    assert!(
        log(&app)
            .await
            .iter()
            .all(|(action, ..)| !action.starts_with("read."))
    );
}

#[sqlx::test(migrations = false)]
async fn saves_and_submits_keep_each_members_activity_and_completed_count(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    let state = async |user: &TestUser| -> (i16, Option<chrono::DateTime<chrono::Utc>>) {
        sqlx::query_as("select tools_completed, last_activity_at from shared.users where id = $1")
            .bind(user.id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let (completed, ana_at) = state(&c.ana).await;
    assert_eq!(completed, 1);
    assert!(ana_at.is_some());
    assert_eq!(state(&c.ben).await, (0, None));
    app.save(&c.ben, "woop", serde_json::json!({}), "draft")
        .await;
    let (completed, first) = state(&c.ben).await;
    assert_eq!(completed, 0);
    let first = first.expect("a draft is activity");
    app.submit_complete(&c.ben, "woop").await;
    let (completed, second) = state(&c.ben).await;
    assert_eq!(completed, 1);
    assert!(second.unwrap() >= first);
    // The recompute's unlocks are not the member's activity.
    let before = state(&c.cleo).await;
    app.relock(&c.cleo, "know-thyself").await;
    sqlx::query(
        "update shared.user_progress set status = 'unlocked'
         where user_id = $1 and tool_slug = 'know-thyself'",
    )
    .bind(c.cleo.id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(state(&c.cleo).await, before);
}

#[sqlx::test(migrations = false)]
async fn saves_within_a_minute_of_the_last_activity_leave_the_users_row_alone(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let c = cast(&app).await;
    app.save(&c.ben, "woop", serde_json::json!({}), "draft")
        .await;
    let version = async || -> (String, Option<chrono::DateTime<chrono::Utc>>) {
        sqlx::query_as("select xmin::text, last_activity_at from shared.users where id = $1")
            .bind(c.ben.id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = version().await;
    let saved = app
        .save(&c.ben, "woop", serde_json::json!({"wish": "more"}), "draft")
        .await;
    assert_eq!(saved.status, 200, "{:?}", saved.body);
    assert_eq!(version().await, before);
    // An hour later, the next save moves it.
    sqlx::query("update shared.users set last_activity_at = last_activity_at - interval '1 hour' where id = $1")
        .bind(c.ben.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let old = version().await.1.unwrap();
    app.save(
        &c.ben,
        "woop",
        serde_json::json!({"wish": "even more"}),
        "draft",
    )
    .await;
    assert!(version().await.1.unwrap() > old);
}

/// The funnel's counts (migration 0019) as the triggers keep them, beside a
/// count of the progress itself: (organization, tool, status, members).
async fn kept_and_true_counts(pool: &PgPool) -> (Vec<FunnelCount>, Vec<FunnelCount>) {
    let kept = sqlx::query_as(
        "select organization_id, tool_slug::text, status::text, sum(n)::bigint from shared.funnel_counts
         group by 1, 2, 3 having sum(n) <> 0 order by 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let counted = sqlx::query_as(
        "select u.organization_id, p.tool_slug::text, p.status::text, count(*)::bigint
         from shared.user_progress p join shared.users u on u.id = p.user_id
         group by 1, 2, 3 order by 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    (kept, counted)
}

type FunnelCount = (Option<Uuid>, String, String, i64);

#[sqlx::test(migrations = false)]
async fn the_funnels_kept_counts_follow_saves_moves_unlocks_and_deletions_exactly(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let c = cast(&app).await;
    let same = |(kept, counted): (Vec<FunnelCount>, Vec<FunnelCount>), when: &str| {
        assert!(!counted.is_empty());
        assert_eq!(kept, counted, "{when}");
    };
    same(
        kept_and_true_counts(&pool).await,
        "after the first syncs and a submit",
    );

    app.save(&c.ben, "woop", serde_json::json!({}), "draft")
        .await;
    let saved = app.submit_complete(&c.cleo, "woop").await;
    assert!((200..300).contains(&saved.status), "{:?}", saved.body);
    same(
        kept_and_true_counts(&pool).await,
        "after saves and a submit",
    );

    // A member moves to another organization, another leaves every one.
    sqlx::query("update shared.users set organization_id = $2 where id = $1")
        .bind(c.ben.id)
        .bind(c.globex)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update shared.users set organization_id = null where id = $1")
        .bind(c.cleo.id)
        .execute(&pool)
        .await
        .unwrap();
    same(kept_and_true_counts(&pool).await, "after two moves");

    // A progress row deleted by itself, then a user with all of theirs (the
    // foreign key's cascade), as the eraser does either.
    sqlx::query("delete from shared.user_progress where user_id = $1 and tool_slug = 'woop'")
        .bind(c.ana.id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("delete from shared.users where id = $1")
        .bind(c.cleo.id)
        .execute(&pool)
        .await
        .unwrap();
    same(kept_and_true_counts(&pool).await, "after deletions");

    // The scheduled recompute recreates the missing row and counts everything
    // again: one row per (organization, tool, status), the same numbers.
    let report = recompute::run(&app.app.context.pool, Registry::embedded(), 100)
        .await
        .unwrap();
    let (kept, counted) = kept_and_true_counts(&pool).await;
    assert_eq!(kept, counted, "after the recompute");
    assert_eq!(report.funnel_counts as usize, counted.len());
    let rows: i64 = sqlx::query_scalar("select count(*) from shared.funnel_counts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows as usize, counted.len(), "compacted to one row each");

    // And the funnel reads them: globex now has ben's draft.
    let funnel = app
        .get(
            &format!("/organizations/{}/funnel", c.globex),
            &c.admin.token,
        )
        .await;
    assert_eq!(funnel.status, 200, "{:?}", funnel.body);
    let woop = &funnel.body["tools"][Registry::embedded().position("woop").unwrap()];
    assert_eq!(woop["in_progress"], 1);
}

/// The downloads route streams the same CSV the roster answers through API
/// Gateway, in chunks once it is large, and refuses as the roster does.
#[sqlx::test(migrations = false)]
async fn the_roster_download_streams_the_rosters_csv_in_chunks(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let c = cast(&app).await;
    // Enough members for a CSV over one chunk (64 KiB).
    sqlx::query(
        "insert into shared.users (lms_user_id, email, full_name, organization_id)
         select 'bulk-' || i, 'bulk' || i || '@acme.test', 'Bulk Member ' || i, $1
         from generate_series(1, 400) i",
    )
    .bind(c.acme)
    .execute(&pool)
    .await
    .unwrap();
    let (status, content_type, whole) = get_raw(
        &app,
        &format!("/organizations/{}/members?sort=progress&order=desc", c.acme),
        &c.guru.token,
        "text/csv",
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/csv; charset=utf-8; header=present")
    );

    let request = http::Request::builder()
        .uri(format!(
            "/downloads/organizations/{}/members?sort=progress&order=desc",
            c.acme
        ))
        .header("authorization", format!("Bearer {}", c.guru.token))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let answer = app.app.handle_streaming(request).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-type"],
        "text/csv; charset=utf-8; header=present"
    );
    let mut body = answer.into_body();
    let (mut chunks, mut bytes) = (0, Vec::new());
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        chunks += 1;
        bytes.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert!(chunks > 1, "{chunks} chunk(s) of {} bytes", bytes.len());
    assert_eq!(String::from_utf8(bytes).unwrap(), whole);
    assert_eq!(whole.lines().count(), 1 + 4 + 400);

    let refused = app
        .get(
            &format!("/downloads/organizations/{}/members", c.acme),
            &c.outside_guru.token,
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (404, "organization_not_found")
    );
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from shared.audit_log where action = 'read.roster_csv' and actor_id = $1",
    )
    .bind(c.guru.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 2, "the API's CSV and the download");
}

/// A roster whose CSV the API cannot answer (a Lambda answer holds 6 MB, its
/// text escaped into JSON) is a 422 that names the download, which streams
/// it whole, rather than an answer Lambda would fail.
#[sqlx::test(migrations = false)]
async fn a_roster_csv_too_large_for_the_api_is_refused_with_the_download_named(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let c = cast(&app).await;
    // Names of 255 quotes (the longest a name is): 512 bytes in CSV, twice
    // that escaped into JSON; with long emails, 4,000 of them are over the
    // API's limit, though their CSV alone is not.
    sqlx::query(
        "insert into shared.users (lms_user_id, email, full_name, organization_id)
         select 'quoted-' || i, i || repeat('x', 230) || '@acme.test', repeat('\"', 255), $1
         from generate_series(1, 4000) i",
    )
    .bind(c.acme)
    .execute(&pool)
    .await
    .unwrap();
    let path = format!("/organizations/{}/members", c.acme);
    let (status, _, body) = get_raw(&app, &path, &c.guru.token, "text/csv").await;
    assert_eq!(status, 422, "{}", &body[..body.len().min(200)]);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "export_too_large");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("/downloads{path}")), "{message}");

    let request = http::Request::builder()
        .uri(format!("/downloads{path}"))
        .header("authorization", format!("Bearer {}", c.guru.token))
        .body(lambda_http::Body::Empty)
        .unwrap();
    let answer = app.app.handle_streaming(request).await;
    assert_eq!(answer.status(), 200);
    let mut body = answer.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
        bytes.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    let whole = String::from_utf8(bytes).unwrap();
    assert!(
        whole.len() < shared::reports::handler::CSV_LIMIT_BYTES,
        "the CSV itself ({} bytes) would fit; escaped into the answer it does not",
        whole.len()
    );
    assert_eq!(whole.lines().count(), 1 + 4 + 4000);
}
