//! `GET /progress` and `GET /users/{user_id}/progress`.

use sqlx::PgPool;

use crate::{RoundTripCounter, TestApp};

#[sqlx::test(migrations = false)]
async fn progress_lists_every_tool_in_sprint_order_with_a_summary(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", Some("acme"), "user").await;
    app.submit_complete(&ana, "woop").await;
    app.save(
        &ana,
        "know-thyself",
        serde_json::json!({"dream": "x"}),
        "draft",
    )
    .await;

    let response = app.get("/progress", &ana.token).await;
    assert_eq!(response.status, 200);
    let tools = response.body["tools"].as_array().unwrap();
    assert_eq!(tools.len(), app.registry().tools().len());
    let sprints: Vec<i64> = tools
        .iter()
        .map(|t| t["sprint"].as_i64().unwrap())
        .collect();
    assert!(sprints.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(tools[0]["slug"], "woop");
    assert_eq!(tools[0]["status"], "completed");
    assert_eq!(tools[0]["percentage"], 100);
    assert!(tools[0]["completed_at"].is_string());
    assert_eq!(tools[1]["status"], "in_progress");
    assert_eq!(tools[1]["percentage"], 33);
    assert_eq!(tools[1]["module"], 1);
    assert_eq!(tools[7]["optional"], true);
    let summary = &response.body["summary"];
    let total = app.registry().tools().len();
    assert_eq!(summary["total"], total);
    assert_eq!(summary["completed"], 1);
    assert_eq!(summary["in_progress"], 1);
    assert_eq!(summary["unlocked"], 0);
    assert_eq!(summary["locked"], total - 2);
    assert_eq!(summary["percentage"], (100 + 33) / total);
    assert_eq!(summary["current_tool"], "know-thyself");
    assert_eq!(summary["next_tool"], "dream");
}

#[sqlx::test(migrations = false)]
async fn progress_summary_counts_equal_the_rows(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    for slug in ["woop", "know-thyself", "dream"] {
        let submitted = app.submit_complete(&ana, slug).await;
        assert_eq!(submitted.status, 201, "{slug}: {:?}", submitted.body);
    }
    let draft = serde_json::json!({"data": {}, "status": "draft"});
    let saved = app
        .put("/tools/values/submission", &ana.token, &draft, &[])
        .await;
    assert_eq!(saved.status, 201, "{:?}", saved.body);
    let response = app.get("/progress", &ana.token).await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select status::text, count(*) from shared.user_progress where user_id = $1 group by 1",
    )
    .bind(ana.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let rows: std::collections::HashMap<String, i64> = rows.into_iter().collect();
    // Every status, those with no row too, and the total.
    for status in ["completed", "in_progress", "unlocked", "locked"] {
        let count = rows.get(status).copied().unwrap_or(0);
        assert_eq!(response.body["summary"][status], count, "{status}");
    }
    assert_eq!(rows["completed"], 3);
    assert_eq!(rows["in_progress"], 1);
    assert_eq!(
        response.body["summary"]["total"],
        app.registry().tools().len()
    );
}

#[sqlx::test(migrations = false)]
async fn progress_takes_exactly_one_round_trip(pool: PgPool) {
    let test = TestApp::new(pool).await;
    let ana = test.user("ana", None, "user").await;
    let counter = RoundTripCounter::new(&test.pool).await;
    let (round_trips, response) = counter
        .of_second(|| {
            http::Request::get("/progress")
                .header("authorization", format!("Bearer {}", ana.token))
                .body(lambda_http::Body::Empty)
                .unwrap()
        })
        .await;
    assert_eq!(response.status(), 200);
    // Behind a transaction pooler a read is pinned in BEGIN/COMMIT and prepared unnamed.
    assert_eq!(round_trips, if crate::behind_pooler() { 4 } else { 1 });
}

#[sqlx::test(migrations = false)]
async fn each_locked_tool_says_which_required_inputs_it_waits_for(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ana = app.user("ana", None, "user").await;
    let missing = |body: &serde_json::Value, slug: &str| -> Vec<(String, String)> {
        let tool = body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["slug"] == slug)
            .unwrap()
            .clone();
        tool["missing"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|i| {
                        assert!(!i["label"].as_str().unwrap().is_empty());
                        (
                            i["field"].as_str().unwrap().to_owned(),
                            i["from_tool"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let fresh = app.get("/progress", &ana.token).await.body;
    assert_eq!(
        missing(&fresh, "values"),
        [
            ("identity.dream.one_sentence".to_owned(), "dream".to_owned()),
            (
                "identity.personal_values".to_owned(),
                "know-thyself".to_owned()
            ),
        ]
    );
    // Not locked: nothing to explain.
    assert!(fresh["tools"][0].get("missing").is_none());
    let registry = app.registry();
    for (tool, shown) in registry
        .tools()
        .iter()
        .zip(fresh["tools"].as_array().unwrap())
    {
        let locked = shown["status"] == "locked";
        assert_eq!(
            shown.get("missing").is_some(),
            locked && tool.required_dependencies().next().is_some(),
            "{}",
            tool.slug
        );
    }

    app.submit_complete(&ana, "woop").await;
    app.submit_complete(&ana, "know-thyself").await;
    let later = app.get("/progress", &ana.token).await.body;
    assert_eq!(
        missing(&later, "values"),
        [("identity.dream.one_sentence".to_owned(), "dream".to_owned())]
    );
    assert!(missing(&later, "dream").is_empty(), "dream is unlocked now");
}
